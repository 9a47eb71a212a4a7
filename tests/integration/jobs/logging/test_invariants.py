"""The job log invariants of DESIGN.md, against real PostgreSQL (sync backend unless named)."""

from __future__ import annotations

import io
import logging
import os
import signal
import threading
import time

import pytest
from billiard.exceptions import SoftTimeLimitExceeded
from django.core.management import call_command
from django.db import connection, connections, transaction

from ami.jobs.locking import lock_job
from ami.jobs.logging import JOB_LOGGER_NAME, job_logger
from ami.jobs.logging.handler import flush_job_logs, get_backend
from ami.jobs.models import Job, JobLog
from tests.support.logs import LOGS_DB, stored_messages

pytestmark = LOGS_DB


def terminate(pids: list[int]) -> None:
    """pg_terminate_backend, and wait until the server has really ended them."""
    with connection.cursor() as cursor:
        for pid in pids:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        for _ in range(100):
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [pids])
            if cursor.fetchone()[0] == 0:
                return
            time.sleep(0.05)
    raise AssertionError(f"backends {pids} did not end")


def failure_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "write failed" in line]


def test_line_logged_inside_a_rolled_back_transaction_is_stored(job):
    with pytest.raises(RuntimeError), transaction.atomic():
        Job.objects.filter(pk=job.pk).update(name="renamed")
        job.logger.error("saving results failed: explains the rollback")
        raise RuntimeError("boom")
    job.refresh_from_db()
    assert job.name == "Test job"  # the transaction did roll back
    assert stored_messages(job.pk) == ["saving results failed: explains the rollback"]


def test_logging_while_holding_the_job_row_lock_returns_at_once(job):
    with lock_job(job.pk):
        began = time.monotonic()
        job.logger.info("inside the lock")
        elapsed = time.monotonic() - began
    assert elapsed < 1.0
    assert stored_messages(job.pk) == ["inside the lock"]


def test_log_write_does_not_wait_even_behind_a_plain_for_update(job):
    """JobLog.job has no database FK: no FOR KEY SHARE on the job row, so no wait at all."""
    with transaction.atomic():
        Job.objects.select_for_update().get(pk=job.pk)  # the upstream lock, in this process
        began = time.monotonic()
        job.logger.info("not waiting on the job row")
        elapsed = time.monotonic() - began
    assert elapsed < 1.0
    assert stored_messages(job.pk) == ["not waiting on the job row"]


def test_killed_log_connection_between_two_lines_loses_neither(job):
    job.logger.info("before the kill")
    backend_pid = connections["logs"].connection.info.backend_pid
    terminate([backend_pid])
    job.logger.info("after the kill")
    assert stored_messages(job.pk) == ["before the kill", "after the kill"]
    assert connections["logs"].connection.info.backend_pid != backend_pid


def test_buffered_flusher_connection_killed_between_two_batches_loses_neither(job, use_backend):
    use_backend("buffered")
    job.logger.info("first batch")
    assert flush_job_logs(10)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE application_name = 'ami-joblog' AND datname = current_database()"
        )
        flusher_pids = [pid for (pid,) in cursor.fetchall()]
    assert len(flusher_pids) == 1  # the flusher thread's own connection
    terminate(flusher_pids)
    job.logger.info("second batch")
    assert flush_job_logs(10)
    assert stored_messages(job.pk) == ["first batch", "second batch"]


def test_lines_for_a_deleted_job_raise_nothing_and_prune_removes_them(job, caplog):
    logger = job.logger
    job_id = job.pk
    Job.objects.filter(pk=job_id).delete()
    with caplog.at_level(logging.INFO):
        for i in range(20):
            logger.warning("line %d for a deleted job", i)
    # Nothing cascaded: each line was logged once, and nothing else was logged.
    assert [r.getMessage() for r in caplog.records] == [
        f"line {i} for a deleted job" for i in range(20)
    ]
    assert JobLog.objects.filter(job_id=job_id).count() == 20  # orphans, until pruned
    call_command("prune_job_logs", "--orphans", stdout=io.StringIO())
    assert not JobLog.objects.filter(job_id=job_id).exists()


def test_soft_time_limit_raised_during_a_write_propagates(job):
    """A soft time limit (billiard raises it from a signal handler) is never swallowed."""
    locked, release = threading.Event(), threading.Event()

    def hold_for_update() -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("LOCK TABLE jobs_joblog IN ACCESS EXCLUSIVE MODE")
            locked.set()
            release.wait(10)
        connection.close()

    def soft_time_limit(signum, frame):
        raise SoftTimeLimitExceeded()

    holder = threading.Thread(target=hold_for_update)
    holder.start()
    locked.wait(10)
    previous = signal.signal(signal.SIGUSR1, soft_time_limit)
    timer = threading.Timer(0.3, os.kill, args=(os.getpid(), signal.SIGUSR1))
    try:
        timer.start()
        with pytest.raises(SoftTimeLimitExceeded):
            job.logger.info("the write waits on the table lock when the time limit hits")
    finally:
        signal.signal(signal.SIGUSR1, previous)
        release.set()
        holder.join()
    job.logger.info("the next line gets a fresh connection")
    assert stored_messages(job.pk)[-1] == "the next line gets a fresh connection"


def test_oversized_message_is_truncated_with_a_marker_and_nul_stripped(job):
    cap = get_backend().max_message_chars
    job.logger.info("x" * 1_000_000)
    job.logger.info("nul\x00in\x00the message", extra={"note": "a\x00b"})
    big, nul = JobLog.objects.filter(job=job).order_by("id")
    assert len(big.message) < cap + 100
    assert big.message.endswith(f"[... truncated {1_000_000 - cap} characters]")
    assert nul.message == "nulinthe message"
    assert nul.context["note"] == "ab"


def test_storm_of_identical_lines_becomes_a_few_rows_with_the_count(job):
    for _ in range(10_000):
        job.logger.warning("NATS redelivered a result already saved")
    flush_job_logs()
    rows = list(JobLog.objects.filter(job=job).order_by("id"))
    assert 2 <= len(rows) <= 20
    assert rows[0].message == "NATS redelivered a result already saved"
    counts = [row.context["repeated"] for row in rows[1:]]
    assert all(
        row.message == f"last message repeated {row.context['repeated']} times" for row in rows[1:]
    )
    assert sum(counts) == 9_999


def test_context_keeps_the_callers_extra_and_adds_host_and_pid(job):
    job.logger.info("saved", extra={"image_id": 42, "attempt": 2})
    row = JobLog.objects.get(job=job)
    assert row.context["image_id"] == 42 and row.context["attempt"] == 2
    assert row.context["pid"] == os.getpid() and row.context["host"]
    assert row.level == logging.INFO


def test_lines_echo_to_the_process_logging(job, caplog):
    with caplog.at_level(logging.INFO):
        job.logger.info("visible in the worker's own log")
    assert [(r.name, r.job_id) for r in caplog.records] == [(JOB_LOGGER_NAME, job.pk)]


def test_no_logger_is_created_per_job(use_backend):
    memory = use_backend("memory")
    before = set(logging.Logger.manager.loggerDict)
    for job_id in range(1_000_000, 1_001_000):
        job_logger(job_id).info("line for job %d", job_id)
    assert set(logging.Logger.manager.loggerDict) == before
    assert len(memory.rows) == 1000


def test_a_repeat_count_is_written_about_a_second_later_without_another_line(job, job_log_settings):
    job_log_settings(repeat_window=0.2)
    for _ in range(3):
        job.logger.info("same line")
    for _ in range(100):  # written by the timer, no flush, no further line
        if len(stored_messages(job.pk)) == 2:
            break
        time.sleep(0.05)
    assert stored_messages(job.pk) == ["same line", "last message repeated 2 times"]
