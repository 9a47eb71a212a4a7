"""Live log streams woken by NOTIFY: the triggers, the listener, and streams that do not poll.

The server here polls only every 30 s, with or without its listener, so a line or a status
change that reaches a client within a few seconds was pushed.
"""

from __future__ import annotations

import asyncio
import json
import os
import time

import httpx
import psycopg
import pytest
from django.db import connection

from ami.jobs.api.wakeups import (
    EVERYONE,
    LISTENER_APP_SUFFIX,
    LOG_CHANNEL,
    STATUS_CHANNEL,
    Wakeups,
)
from ami.jobs.locking import transition
from ami.jobs.logging import FINAL_LINE_KEY
from ami.jobs.models import JobLog
from ami.jobs.states import JobStatus
from ami_lab.live_server import uvicorn_server
from tests.support.asgi_server import database_url
from tests.support.migrations import latest, migrate
from tests.support.polling import wait_until
from tests.support.sse import events

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")
SLOW_POLL = "30"  # seconds: both the fallback and the no-listener poll interval
PUSHED = 5.0  # seconds: well under SLOW_POLL, generous for a loaded 2-core machine
READ_TIMEOUT = 15.0  # heartbeats come every 0.5 s


@pytest.fixture(scope="module")
def push_server(django_db_setup, tmp_path_factory):
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "AMI_SSE_POLL_SECONDS": SLOW_POLL,
        "AMI_SSE_FALLBACK_POLL_SECONDS": SLOW_POLL,
        "AMI_SSE_HEARTBEAT_SECONDS": "0.5",
    }
    with uvicorn_server(env, tmp_path_factory.mktemp("uvicorn") / "server.log") as server:
        yield server


def listener_pids() -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name LIKE %s",
            [f"%{LISTENER_APP_SUFFIX}"],
        )
        return [row[0] for row in cursor.fetchall()]


class Stream:
    """An open SSE stream; `next_log` returns the next line and the seconds it took."""

    def __init__(self, base: str, job_id: int, cookies: dict) -> None:
        self.client = httpx.Client(base_url=base, cookies=cookies, timeout=READ_TIMEOUT)
        self.request = self.client.stream("GET", f"/api/jobs/{job_id}/logs/stream?tail=0")

    def __enter__(self) -> Stream:
        self.client.__enter__()
        self.response = self.request.__enter__()
        self.events = events(self.response.iter_lines())
        assert next(e for e in self.events if e.event == "comment")  # live: past its history
        return self

    def __exit__(self, *exc) -> None:
        self.request.__exit__(*exc)
        self.client.__exit__(*exc)

    def next_event(self, kind: str, within: float) -> tuple[object, float]:
        started = time.monotonic()
        for event in self.events:
            if event.event == kind:
                return event, time.monotonic() - started
            if time.monotonic() - started > within:
                break
        raise AssertionError(f"no {kind} event within {within} s")

    def next_log(self, within: float = PUSHED) -> tuple[dict, float]:
        event, took = self.next_event("log", within)
        return json.loads(event.data), took

    def no_log_for(self, seconds: float) -> None:
        started = time.monotonic()
        for event in self.events:  # heartbeats pace this loop
            assert event.event != "log", f"unexpected line {event.data}"
            if time.monotonic() - started >= seconds:
                return


def listening() -> None:
    """Wait until the server's listener is connected (its first connect wakes every stream)."""
    wait_until(listener_pids, "the server's LISTEN connection")


def notify_triggers() -> list[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE NOT tgisinternal"
            " AND tgname IN ('jobs_joblog_notify', 'jobs_job_status_notify') ORDER BY 2"
        )
        return cursor.fetchall()


def test_migration_installs_and_removes_the_triggers():
    installed = [("jobs_job", "jobs_job_status_notify"), ("jobs_joblog", "jobs_joblog_notify")]
    assert notify_triggers() == installed
    try:
        migrate(("jobs", "0006_job_status_completed_with_errors"))
        assert notify_triggers() == []
    finally:
        migrate(latest("jobs"))
    assert notify_triggers() == installed


def test_one_notification_per_statement_naming_its_jobs(staged_job):
    with psycopg.connect(database_url(), autocommit=True) as listen:
        listen.execute(f"LISTEN {LOG_CHANNEL}")
        listen.execute(f"LISTEN {STATUS_CHANNEL}")
        with psycopg.connect(database_url()) as writer, writer.cursor() as cur:
            key = staged_job.log_partition_key  # the other two jobs do not exist: any key
            columns = "job_id, level, message, context, job_partition_key"
            with cur.copy(f"COPY jobs_joblog ({columns}) FROM STDIN") as copy:
                for i in range(300):
                    copy.write_row((staged_job.pk + i % 3, 20, f"line {i}", "{}", key))
            assert list(listen.notifies(timeout=0.5)) == []  # nothing before the commit
            writer.commit()
            many_jobs = ",".join(f"({job_id}, 20, 'x', '{{}}', %(key)s)" for job_id in range(2000))
            cur.execute(f"INSERT INTO jobs_joblog ({columns}) VALUES {many_jobs}", {"key": key})
            writer.commit()
        transition(staged_job.pk, JobStatus.STARTED)
        received = list(listen.notifies(timeout=2.0, stop_after=3))
    first, second, third = ((n.channel, n.payload) for n in received)
    assert first[0] == LOG_CHANNEL
    assert sorted(map(int, first[1].split(","))) == [staged_job.pk + i for i in range(3)]
    assert second == (LOG_CHANNEL, EVERYONE)  # 2000 ids do not fit a payload
    assert third == (STATUS_CHANNEL, str(staged_job.pk))


def test_wakes_only_the_streams_of_the_named_jobs():
    async def run() -> None:
        registry = Wakeups()
        with registry.subscribe(1) as one, registry.subscribe(2) as two:
            with registry.subscribe(2) as also_two, registry.subscribe(3) as three:
                registry.dispatch(LOG_CHANNEL, "2,7")
                assert [s.take()[0] is not None for s in (one, two, also_two, three)] == [
                    False,
                    True,
                    True,
                    False,
                ]
                registry.dispatch(STATUS_CHANNEL, "3")
                assert three.take()[1] is True and one.take() == (None, False)
                registry.set_held(one, True)  # lines above the horizon: any commit may free them
                registry.dispatch(LOG_CHANNEL, "3")
                assert one.take()[0] is not None and two.take()[0] is None
                registry.dispatch(LOG_CHANNEL, EVERYONE)
                assert all(s.take()[0] is not None for s in (one, two, also_two, three))
                assert not await two.wait(0.01)
            assert registry.count() == 2
        assert registry.count() == 0

    asyncio.run(run())


def test_committed_line_is_pushed(push_server, staged_job, session_cookie):
    base, _ = push_server
    transition(staged_job.pk, JobStatus.STARTED)
    with Stream(base, staged_job.pk, session_cookie) as stream:
        listening()
        for i in range(3):
            line = JobLog.objects.create(job=staged_job, message=f"pushed {i}")
            received, took = stream.next_log()
            assert received["id"] == line.id
            assert took < PUSHED


def test_final_status_ends_the_stream_without_waiting(push_server, staged_job, session_cookie):
    base, _ = push_server
    transition(staged_job.pk, JobStatus.STARTED)
    with Stream(base, staged_job.pk, session_cookie) as stream:
        listening()
        last = JobLog.objects.create(
            job=staged_job, message="Job finished", context={FINAL_LINE_KEY: "SUCCESS"}
        )
        assert stream.next_log()[0]["id"] == last.id
        transition(staged_job.pk, JobStatus.SUCCESS)
        _, took = stream.next_event("end", PUSHED)
    assert took < PUSHED


def test_line_held_above_the_horizon_comes_when_the_older_writer_commits(
    push_server, staged_job, session_cookie
):
    base, _ = push_server
    transition(staged_job.pk, JobStatus.STARTED)
    with Stream(base, staged_job.pk, session_cookie) as stream:
        listening()
        with psycopg.connect(database_url()) as older:  # a writer of another job, still open
            older.execute(
                "INSERT INTO jobs_joblog (job_id, level, message, context, job_partition_key)"
                " VALUES (%s, 20, 'other job', '{}', %s)",
                [staged_job.pk + 1000, staged_job.log_partition_key],
            )
            line = JobLog.objects.create(job=staged_job, message="committed behind it")
            stream.no_log_for(1.5)  # woken, but the line is above the horizon
            older.commit()  # notifies only the other job
            received, took = stream.next_log()
    assert received["id"] == line.id
    assert took < PUSHED


def test_listener_reconnects_after_its_connection_is_killed(
    push_server, staged_job, session_cookie
):
    base, _ = push_server
    transition(staged_job.pk, JobStatus.STARTED)
    with Stream(base, staged_job.pk, session_cookie) as stream:
        listening()
        (killed,) = listener_pids()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [killed])
        meanwhile = JobLog.objects.create(job=staged_job, message="while reconnecting")
        assert stream.next_log(within=READ_TIMEOUT)[0]["id"] == meanwhile.id
        wait_until(lambda: listener_pids() not in ([], [killed]), "a new LISTEN connection")
        for i in range(3):
            line = JobLog.objects.create(job=staged_job, message=f"after reconnect {i}")
            received, took = stream.next_log()
            assert received["id"] == line.id
            assert took < PUSHED
