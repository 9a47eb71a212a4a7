"""JobLog partitions on a real server: made on demand and ahead, one touched per read, dropped
whole by a single runner, and no line lost while a partition is detached."""

from __future__ import annotations

import contextlib
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from django.db import connection, connections
from django.utils import timezone

from ami.jobs import log_partitions
from ami.jobs.logging import job_logger
from ami.jobs.logging.handler import flush_job_logs
from ami.jobs.models import Job, JobLog
from ami.jobs.states import JobStatus
from tests.support.asgi_server import database_url
from tests.support.logs import LOGS_DB, stored_messages
from tests.support.migrations import latest, migrate

pytestmark = LOGS_DB
DAY = timedelta(days=1)


def started_ago(project, days: float, status: str = JobStatus.SUCCESS, **fields) -> Job:
    started = timezone.now() - timedelta(days=days)
    fields.setdefault("finished_at", started + timedelta(hours=1))
    return Job.objects.create(
        project=project, name=f"{days} days ago", status=status, log_partition_key=started,
        **fields,
    )  # fmt: skip


def partition_of(job: Job) -> str:
    parts = log_partitions.partitions(connection)
    return next(p.name for p in parts if p.covers(job.log_partition_key))


def partition_names() -> set[str]:
    return {p.name for p in log_partitions.partitions(connection)}


def write_lines(job: Job, count: int, prefix: str = "line") -> None:
    for i in range(count):
        job_logger(job.pk).info(f"{prefix} {i}")
    flush_job_logs(10.0)


@pytest.fixture(autouse=True)
def _fresh_memory():
    """Each test starts with this process knowing no partition (they come and go here)."""
    log_partitions.covered.forget()
    yield
    log_partitions.covered.forget()


def test_a_job_gets_a_partition_of_its_day_and_its_lines_are_read_from_it_alone(project):
    jobs = [started_ago(project, days, JobStatus.STARTED) for days in (0, 1, 2, 3)]
    for job in jobs:
        write_lines(job, 3)
    names = [partition_of(job) for job in jobs]
    assert len(set(names)) == 4
    for job, name in zip(jobs, names, strict=True):
        start, end = log_partitions.period_bounds(job.log_partition_key, "day")
        assert end - start == DAY
        newest = JobLog.objects.of_job(job.pk).order_by("-txid", "-id")[:100]
        plan = newest.explain()
        scanned = {n for n in partition_names() if re.search(rf"\b{n}\b", plan)}
        assert scanned == {name}, plan
        assert [line.message for line in newest] == ["line 2", "line 1", "line 0"]


def test_week_partitions_start_on_monday_and_never_overlap_days_made_before(
    project, job_log_settings
):
    monday = datetime(2031, 3, 3, tzinfo=UTC)  # a Monday
    log_partitions.ensure([monday + 2 * DAY], connection)  # a day partition: Wednesday
    job_log_settings(PARTITION="week")
    log_partitions.ensure([monday + DAY, monday + 5 * DAY], connection)
    week = [
        p for p in log_partitions.partitions(connection) if monday <= p.start < monday + 7 * DAY
    ]
    assert [(p.start, p.end) for p in week] == [
        (monday, monday + 2 * DAY),  # the week, cut short before the day that existed
        (monday + 2 * DAY, monday + 3 * DAY),
        (monday + 3 * DAY, monday + 7 * DAY),
    ]


def test_concurrent_creators_make_one_partition_without_error():
    key = datetime(2032, 6, 1, 12, tzinfo=UTC)
    go = threading.Barrier(6)

    def create() -> None:
        try:
            go.wait()
            log_partitions.covered.forget()
            log_partitions.ensure([key], connections["default"])
        finally:
            connections.close_all()

    with ThreadPoolExecutor(6) as pool:
        for future in [pool.submit(create) for _ in range(6)]:
            future.result()
    covering = [p for p in log_partitions.partitions(connection) if p.covers(key)]
    assert [p.name for p in covering] == ["jobs_joblog_p20320601"]


def test_prepare_ahead_makes_this_period_and_the_next_ones():
    now = datetime(2033, 1, 10, 15, tzinfo=UTC)
    log_partitions.prepare_ahead(now, periods=2)
    assert {"jobs_joblog_p20330110", "jobs_joblog_p20330111", "jobs_joblog_p20330112"} <= (
        partition_names()
    )


def test_retention_drops_only_partitions_whose_jobs_all_ended_before_the_window(project):
    expired = started_ago(project, 40)
    running = started_ago(project, 41, JobStatus.STARTED, finished_at=None)
    late_finish = started_ago(project, 42, finished_at=timezone.now() - DAY)
    recent = started_ago(project, 2)
    for job in (expired, running, late_finish, recent):
        write_lines(job, 2)
    names = {job.name: partition_of(job) for job in (expired, running, late_finish, recent)}
    result = log_partitions.drop_expired(timedelta(days=30))
    assert names[expired.name] in result.dropped
    assert {names[running.name], names[late_finish.name]} <= set(result.kept_for_jobs)
    assert names[expired.name] not in partition_names()
    assert not JobLog.objects.of_job(expired.pk).exists()
    for job in (running, late_finish, recent):
        assert JobLog.objects.of_job(job.pk).count() == 2


def test_one_runner_acts_at_a_time(project):
    expired = started_ago(project, 40)
    write_lines(expired, 1)
    with psycopg.connect(database_url(), autocommit=True) as other_runner:
        other_runner.execute("SELECT pg_advisory_lock(%s)", [log_partitions.RETENTION_LEASE])
        result = log_partitions.drop_expired(timedelta(days=30))
        # Released here: the server ends a closed session's backend (and its locks) a moment
        # after the client has gone, so closing alone raced the next pass.
        other_runner.execute("SELECT pg_advisory_unlock(%s)", [log_partitions.RETENTION_LEASE])
    assert not result.lease_taken and result.dropped == []
    assert JobLog.objects.of_job(expired.pk).exists()
    assert partition_of(expired) in log_partitions.drop_expired(timedelta(days=30)).dropped


def test_a_detach_that_cannot_get_its_lock_waits_for_the_next_pass(project, monkeypatch):
    monkeypatch.setattr(log_partitions, "DDL_LOCK_TIMEOUT", "200ms")
    expired = started_ago(project, 40)
    write_lines(expired, 1)
    with psycopg.connect(database_url()) as holder:
        holder.execute("LOCK TABLE jobs_joblog IN SHARE UPDATE EXCLUSIVE MODE")
        result = log_partitions.drop_expired(timedelta(days=30))
    name = partition_of(expired)
    assert result.busy == [name] and result.dropped == []
    assert JobLog.objects.of_job(expired.pk).count() == 1
    assert log_partitions.drop_expired(timedelta(days=30)).dropped == [name]


def test_a_detach_left_half_done_is_finalized_by_the_next_pass(project):
    expired = started_ago(project, 40)
    write_lines(expired, 1)
    name = partition_of(expired)
    with psycopg.connect(database_url()) as reader:
        reader.execute(f"SELECT count(*) FROM {name}")  # an open snapshot the detach waits for
        detacher = psycopg.connect(database_url(), autocommit=True)
        interrupted = threading.Thread(
            target=_detach_ignoring_cancel, args=(detacher, name), daemon=True
        )
        interrupted.start()
        _wait_for_activity(f"DETACH PARTITION {name}")
        detacher.cancel()
        interrupted.join(10)
    detacher.close()
    pending = [p for p in log_partitions.partitions(connection) if p.name == name]
    assert pending and pending[0].detach_pending
    assert log_partitions.drop_expired(timedelta(days=30)).dropped == [name]
    assert name not in partition_names()


def _detach_ignoring_cancel(conn: psycopg.Connection, name: str) -> None:
    with contextlib.suppress(psycopg.errors.QueryCanceled):
        conn.execute(f"ALTER TABLE jobs_joblog DETACH PARTITION {name} CONCURRENTLY")


def _wait_for_activity(text: str) -> None:
    deadline = time.monotonic() + 10
    with psycopg.connect(database_url(), autocommit=True) as watcher:
        while time.monotonic() < deadline:
            row = watcher.execute(
                "SELECT 1 FROM pg_stat_activity WHERE query LIKE %s AND wait_event IS NOT NULL",
                [f"%{text}%"],
            ).fetchone()
            if row:
                return
            time.sleep(0.02)
    raise AssertionError(f"never saw {text!r} waiting")


def test_writers_keep_writing_during_a_detach_and_lose_nothing(project, use_backend):
    use_backend("sync")
    expired = started_ago(project, 40)
    live = started_ago(project, 0, JobStatus.STARTED, finished_at=None)
    write_lines(expired, 1)
    write_lines(live, 1, prefix="warm-up")
    name = partition_of(expired)
    stop = threading.Event()
    written: list[int] = []

    def write() -> None:
        count = 0
        try:
            while not stop.is_set():
                job_logger(live.pk).info(f"during {threading.get_ident()} {count}")
                count += 1
        finally:
            written.append(count)
            connections.close_all()

    # A reader of the old partition holds the detach in its second phase for a second.
    with psycopg.connect(database_url()) as reader:
        reader.execute(f"SELECT count(*) FROM {name}")
        threading.Timer(1.0, reader.commit).start()
        writers = [threading.Thread(target=write) for _ in range(3)]
        for thread in writers:
            thread.start()
        started = time.monotonic()
        result = log_partitions.drop_expired(timedelta(days=30))
        detach_took = time.monotonic() - started
        stop.set()
        for thread in writers:
            thread.join(30)
    assert result.dropped == [name] and detach_took >= 0.9
    stored = [m for m in stored_messages(live.pk) if m.startswith("during")]
    assert len(stored) == sum(written) > 0
    assert len(set(stored)) == len(stored)


def test_a_writer_remakes_a_partition_dropped_since_it_last_wrote(project, use_backend):
    use_backend("sync")
    job = started_ago(project, 5, JobStatus.STARTED, finished_at=None)
    write_lines(job, 1, prefix="before")
    name = partition_of(job)
    with psycopg.connect(database_url(), autocommit=True) as other:  # another process's pass
        other.execute(f"ALTER TABLE jobs_joblog DETACH PARTITION {name}")
        other.execute(f"DROP TABLE {name}")
    write_lines(job, 1, prefix="after")
    assert stored_messages(job.pk) == ["after 0"]


def test_lines_of_a_job_not_yet_committed_land_in_its_partition(project, use_backend):
    use_backend("sync")
    from django.db import transaction

    with transaction.atomic():
        job = Job.objects.create(project=project, name="in the making")
        job_logger(job.pk).info("written before the job commits")
    assert stored_messages(job.pk) == ["written before the job commits"]
    assert JobLog.objects.of_job(job.pk).get().job_partition_key == job.log_partition_key


def test_an_unpartitioned_table_is_attached_in_place_as_the_legacy_partition(project):
    before = ("jobs", "0007_joblog_notify")
    old = migrate(before)
    try:
        OldJob, OldLog = old.get_model("jobs", "Job"), old.get_model("jobs", "JobLog")
        job = OldJob.objects.create(project_id=project.pk, name="from before", status="STARTED")
        OldLog.objects.bulk_create(OldLog(job_id=job.pk, message=f"old {i}") for i in range(3))
    finally:
        migrate(latest("jobs"))
    job = Job.objects.get(pk=job.pk)
    assert job.log_partition_key == log_partitions.LEGACY_KEY
    job_logger(job.pk).info("new line of an old job")
    flush_job_logs(10.0)
    messages = list(JobLog.objects.of_job(job.pk).values_list("message", flat=True))
    assert messages == ["old 0", "old 1", "old 2", "new line of an old job"]
    assert partition_of(job) == "jobs_joblog_legacy"
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.SUCCESS, finished_at=timezone.now() - timedelta(days=40)
    )
    assert "jobs_joblog_legacy" in log_partitions.drop_expired(timedelta(days=30)).dropped
