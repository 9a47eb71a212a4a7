"""No reader skips or repeats a committed line, whoever writes, reads or idles meanwhile.

Real writer transactions on their own connections and processes, readers on their own
connections (a real uvicorn process, and threads): pages following `newer_cursor`, the SSE
tail and downloads.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import psycopg
import pytest

from ami.jobs.locking import transition
from ami.jobs.models import JobLog
from ami.jobs.states import JobStatus
from ami_lab.live_server import uvicorn_server
from tests.support.asgi_server import database_url
from tests.support.log_writers import INSERT, write_mixed_transactions
from tests.support.logs import add_lines
from tests.support.polling import wait_until
from tests.support.sse import events

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")
DEADLINE = 60.0  # seconds: any one wait in these tests
HTTP_TIMEOUT = 30.0  # seconds
POLL_INTERVAL = 0.01  # seconds: readers advance fast, a wait should notice at once
# Lines must reach readers well within this while an unrelated transaction stays open (the
# writers commit theirs within a few seconds); far below 60 s, where the old horizon gave up.
NOT_FROZEN_SECONDS = 20.0


def committed_cursors(job_id: int) -> list[str]:
    """Every committed line of the job, in the order readers must serve them."""
    positions = JobLog.objects.filter(job_id=job_id).order_by("txid", "id")
    return [f"{txid}.{line_id}" for txid, line_id in positions.values_list("txid", "id")]


def wait_for(condition: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    wait_until(condition, what, deadline, interval=POLL_INTERVAL)


@contextmanager
def unrelated_open_transaction(url: str, project_id: int) -> Iterator[psycopg.Connection]:
    """An open UPDATE on another table: it holds a transaction id the whole time."""
    conn = psycopg.connect(url)
    try:
        conn.execute("UPDATE main_project SET name = name WHERE id = %s", [project_id])
        assert conn.execute("SELECT pg_current_xact_id_if_assigned()").fetchone()[0] is not None
        yield conn
    finally:
        conn.rollback()
        conn.close()


class PageReader(threading.Thread):
    """Follows `newer_cursor` from the start; after `stop`, reads until a page is empty."""

    def __init__(self, base: str, cookies: dict, job_id: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.base, self.cookies, self.job_id, self.stop = base, cookies, job_id, stop
        self.seen: list[str] = []
        self.requests = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._follow()
        except BaseException as error:  # reported by the test thread
            self.error = error

    def _follow(self) -> None:
        cursor = "0.0"
        with httpx.Client(base_url=self.base, cookies=self.cookies, timeout=HTTP_TIMEOUT) as c:
            while True:
                stopping = self.stop.is_set()  # read before the page: it must see every line
                response = c.get(f"/api/jobs/{self.job_id}/logs?after={cursor}&limit=37")
                response.raise_for_status()
                body = response.json()
                self.seen += [row["cursor"] for row in body["results"]]
                self.requests += 1
                cursor = body["newer_cursor"]
                if stopping and not body["results"]:
                    return


class StreamReader(threading.Thread):
    """An SSE client from the start of the log until the `end` event."""

    def __init__(self, base: str, cookies: dict, job_id: int) -> None:
        super().__init__(daemon=True)
        self.base, self.cookies, self.job_id = base, cookies, job_id
        self.seen: list[str] = []
        self.ended = False
        self.error: BaseException | None = None

    def run(self) -> None:
        url = f"/api/jobs/{self.job_id}/logs/stream?after=0.0"
        try:
            with (
                httpx.Client(base_url=self.base, cookies=self.cookies, timeout=HTTP_TIMEOUT) as c,
                c.stream("GET", url) as response,
            ):
                for event in events(response.iter_lines()):
                    if event.event == "log":
                        assert event.id == json.loads(event.data)["cursor"]
                        self.seen.append(event.id)
                    elif event.event == "end":
                        self.ended = True
                        return
        except BaseException as error:
            self.error = error


class DownloadReader(threading.Thread):
    """Downloads the whole log again and again until `stop`."""

    def __init__(self, base: str, cookies: dict, job_id: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.base, self.cookies, self.job_id, self.stop = base, cookies, job_id, stop
        self.downloads: list[list[str]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        url = f"/api/jobs/{self.job_id}/logs/download?format=ndjson"
        try:
            with httpx.Client(base_url=self.base, cookies=self.cookies, timeout=HTTP_TIMEOUT) as c:
                while not self.stop.is_set():
                    response = c.get(url)
                    response.raise_for_status()
                    lines = [json.loads(row)["cursor"] for row in response.text.splitlines()]
                    self.downloads.append(lines)
        except BaseException as error:
            self.error = error


def test_concurrent_readers_see_every_committed_line_once_in_order(
    asgi_server, staged_job, session_cookie, test_database_url
):
    base, _ = asgi_server
    transition(staged_job.pk, JobStatus.STARTED)
    stop = threading.Event()
    context = multiprocessing.get_context("spawn")
    writers = [
        context.Process(
            target=write_mixed_transactions, args=(test_database_url, staged_job.pk, w, 60)
        )
        for w in range(3)
    ]
    with unrelated_open_transaction(test_database_url, staged_job.project_id) as unrelated:
        pages = [PageReader(base, session_cookie, staged_job.pk, stop) for _ in range(3)]
        streams = [StreamReader(base, session_cookie, staged_job.pk) for _ in range(2)]
        download = DownloadReader(base, session_cookie, staged_job.pk, stop)
        readers = [*pages, *streams, download]
        for reader in readers:
            reader.start()
        for process in writers:
            process.start()
        # Not frozen by the unrelated transaction: lines reach every kind of reader.
        started = time.monotonic()
        wait_for(lambda: all(len(p.seen) >= 20 for p in pages), "pages", NOT_FROZEN_SECONDS)
        wait_for(lambda: all(len(s.seen) >= 20 for s in streams), "streams", NOT_FROZEN_SECONDS)
        wait_for(lambda: any(len(d) >= 20 for d in download.downloads), "a download", 5.0)
        assert time.monotonic() - started < NOT_FROZEN_SECONDS

        # A log writer holds its transaction open; others commit past it meanwhile.
        with psycopg.connect(test_database_url) as slow:
            held = slow.execute(INSERT + " RETURNING txid, id", [staged_job.pk, "held"])
            held_cursor = "{}.{}".format(*held.fetchone())
            with psycopg.connect(test_database_url, autocommit=True) as fast:
                for i in range(5):
                    fast.execute(INSERT, [staged_job.pk, f"past the held line {i}"])
            for process in writers:
                process.join(timeout=DEADLINE)
                assert process.exitcode == 0
            # Every page reader reads again after the later lines committed; none passes it.
            requests = [p.requests for p in pages]
            wait_for(
                lambda: all(p.requests > n + 2 for p, n in zip(pages, requests, strict=True)),
                "reads",
            )
            assert not any(held_cursor in r.seen for r in [*pages, *streams])
            slow.commit()
        stop.set()
        transition(staged_job.pk, JobStatus.SUCCESS)
        for reader in readers:
            reader.join(timeout=DEADLINE)
            assert not reader.is_alive()
            assert reader.error is None, reader.error
        assert not unrelated.closed  # open the whole time

    committed = committed_cursors(staged_job.pk)
    assert len(committed) > 100
    assert held_cursor in committed
    for page in pages:
        assert page.seen == committed  # every committed line, once, in (txid, id) order
    for stream in streams:
        assert stream.ended
        assert stream.seen == committed
    assert download.downloads
    for lines in download.downloads:
        assert lines == committed[: len(lines)]  # a prefix: nothing skipped, nothing twice


def test_a_fresh_process_serves_existing_lines_at_once(
    staged_job, session_cookie, subprocess_env, test_database_url, tmp_path
):
    lines = add_lines(staged_job, 30)
    expected = [f"{line.txid}.{line.id}" for line in lines]
    env = {**subprocess_env, "DATABASE_URL": database_url()}
    with (
        unrelated_open_transaction(test_database_url, staged_job.project_id),
        uvicorn_server(env, tmp_path / "fresh.log") as (base, _),
        httpx.Client(base_url=base, cookies=session_cookie, timeout=HTTP_TIMEOUT) as client,
    ):
        logs = f"/api/jobs/{staged_job.pk}/logs"
        newest = client.get(logs).json()
        forward = client.get(f"{logs}?after=0.0").json()
        download = client.get(f"{logs}/download?format=ndjson")
    assert [row["cursor"] for row in newest["results"]] == expected[::-1]
    assert [row["cursor"] for row in forward["results"]] == expected
    assert [json.loads(row)["cursor"] for row in download.text.splitlines()] == expected


def test_a_writer_with_an_earlier_transaction_id_is_not_skipped(
    member_client, staged_job, test_database_url
):
    def follow(cursor: str) -> tuple[list[str], str]:
        response = member_client.get(f"/api/jobs/{staged_job.pk}/logs?after={cursor}&limit=1000")
        assert response.status_code == 200, response.content
        body = response.json()
        return [row["cursor"] for row in body["results"]], body["newer_cursor"]

    seen, cursor = follow("0.0")
    with psycopg.connect(test_database_url) as late:
        # Its transaction id is taken here, long before its first log line.
        late.execute("UPDATE main_project SET name = name WHERE id = %s", [staged_job.project_id])
        with psycopg.connect(test_database_url, autocommit=True) as other:
            other.execute(INSERT, [staged_job.pk, "before the late lines"])
            ids, cursor = follow(cursor)
            seen += ids
            late.execute(INSERT, [staged_job.pk, "late 1"])
            late.execute(INSERT, [staged_job.pk, "late 2"])
            for i in range(3):
                other.execute(INSERT, [staged_job.pk, f"after the late lines {i}"])
                ids, cursor = follow(cursor)  # the tail keeps reading meanwhile
                seen += ids
        late.commit()
    for _ in range(3):
        ids, cursor = follow(cursor)
        seen += ids
    committed = committed_cursors(staged_job.pk)
    messages = JobLog.objects.filter(job=staged_job).values_list("message", flat=True)
    assert {"late 1", "late 2"} <= set(messages)
    assert seen == committed
