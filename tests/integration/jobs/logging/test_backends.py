"""One contract for every backend, then what is particular to each."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import threading
import time

import pytest
from celery import signals
from django.db import connection, connections

from ami.jobs.locking import lock_job
from ami.jobs.logging import legacy
from ami.jobs.logging.backends.background import BackgroundWriter
from ami.jobs.logging.backends.buffered import close_thread_connection, copy_rows
from ami.jobs.logging.backends.legacy_json import update_legacy_column
from ami.jobs.logging.errors import FailureReporter
from ami.jobs.logging.handler import build_backend, flush_job_logs
from ami.jobs.logging.rows import LogRow
from ami.jobs.models import Job, JobLog
from tests.support.logs import LOGS_DB, stored_messages

pytestmark = LOGS_DB

TABLE_BACKENDS = ["sync", "buffered", "redis"]


def legacy_stdout(job: Job) -> list[str]:
    job.refresh_from_db(fields=["legacy_logs"])
    return [entry.split(" ", 3)[3] for entry in job.legacy_logs["stdout"]]


@pytest.mark.parametrize("name", [*TABLE_BACKENDS, "legacy_json", "memory"])
def test_every_backend_stores_lines_in_order(name, job, use_backend):
    backend = use_backend(name)
    for i in range(5):
        job.logger.info("line %d", i, extra={"seq": i})
    job.logger.error("it broke")
    assert flush_job_logs(10)
    expected = [f"line {i}" for i in range(5)] + ["it broke"]
    if name == "memory":
        assert [row.message for row in backend.lines(job.pk)] == expected
    elif name == "legacy_json":
        assert legacy_stdout(job) == list(reversed(expected))
        assert job.legacy_logs["stderr"] == ["it broke"]
    else:
        assert stored_messages(job.pk) == expected


def test_legacy_json_keeps_the_newest_lines_up_to_its_cap(job, use_backend):
    use_backend("legacy_json")
    overflow = legacy.MAX_LINES + 5
    update_legacy_column([LogRow(job.pk, logging.INFO, f"line {i}") for i in range(overflow)])
    job.logger.info("one more")
    stdout = legacy_stdout(job)
    assert len(stdout) == legacy.MAX_LINES
    assert stdout[:2] == ["one more", f"line {overflow - 1}"]
    assert stdout[-1] == "line 6"


def test_buffered_emit_does_not_wait_for_the_database(job, use_backend):
    use_backend("buffered", interval=60.0)
    with lock_job(job.pk):
        job.logger.info("queued while the row is locked")
        assert stored_messages(job.pk) == []  # not yet written: emit only queued it
    assert flush_job_logs(10)
    assert stored_messages(job.pk) == ["queued while the row is locked"]


def test_buffered_writes_within_its_interval_without_a_flush(job, use_backend):
    use_backend("buffered", interval=0.05)
    job.logger.info("written by the background thread")
    for _ in range(100):
        if stored_messages(job.pk):
            break
        time.sleep(0.05)
    assert stored_messages(job.pk) == ["written by the background thread"]


def test_buffered_overflow_is_counted_and_written_as_a_marker(job, use_backend):
    backend = use_backend("buffered", max_lines=10, interval=60.0)
    for i in range(25):
        job.logger.info("line %d", i)
    assert flush_job_logs(10)
    messages = stored_messages(job.pk)
    dropped = backend.writer.dropped_total
    assert dropped > 0
    assert len(messages) == 25 - dropped + 1
    assert messages[-1] == f"{dropped} log lines dropped: the job log buffer was full"


def test_buffered_flushes_at_celery_task_end(job, use_backend):
    use_backend("buffered", interval=60.0)
    job.logger.info("logged by a task")
    assert stored_messages(job.pk) == []
    signals.task_postrun.send(sender=None, task_id="t1", task=None, args=(), kwargs={})
    assert stored_messages(job.pk) == ["logged by a task"]


def test_buffered_lines_are_written_at_interpreter_exit(job, subprocess_env):
    env = {**subprocess_env, "JOB_LOG_BACKEND": "buffered", "JOB_LOG_BUFFER_INTERVAL": "60"}
    script = (
        "import django; django.setup()\n"
        "from ami.jobs.logging import job_logger\n"
        f"for i in range(50): job_logger({job.pk}).info('line %d', i)\n"
    )
    subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True)
    assert stored_messages(job.pk) == [f"line {i}" for i in range(50)]


def test_buffered_forked_child_writes_its_own_lines_only(job, use_backend):
    """A prefork child starts its own flusher and never rewrites the parent's queue."""
    use_backend("buffered", interval=60.0)
    job.logger.info("parent, queued before the fork")
    connection.close()  # a child must not share the parent's sockets
    pid = os.fork()
    if pid == 0:  # the child: log, flush, leave without running the parent's cleanup
        code = 1
        try:
            job.logger.info("child")
            code = 0 if flush_job_logs(10) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert stored_messages(job.pk) == ["child"]
    assert flush_job_logs(10)
    assert stored_messages(job.pk) == ["child", "parent, queued before the fork"]


def test_a_refused_row_does_not_sink_its_batch(job, project):
    other = Job.objects.create(project=project, name="other")
    stored: list[LogRow] = []
    reporter = FailureReporter("test")

    def write(rows: list[LogRow]) -> None:
        copy_rows(rows)
        stored.extend(rows)

    writer = BackgroundWriter(
        write, reporter, name="t", batch_size=100, interval=60, max_lines=100,
        on_thread_exit=close_thread_connection,
    )  # fmt: skip
    bad = Job.objects.create(project=project, name="bad row")
    # A row PostgreSQL refuses (a NUL byte, which the handler's sanitizer would have
    # stripped) makes the whole COPY fail; the writer then retries row by row.
    writer.put([LogRow(job.pk, 20, "a"), LogRow(bad.pk, 20, "lost\x00"), LogRow(other.pk, 20, "b")])
    assert writer.flush(10)
    writer.stop(1)
    assert stored_messages(job.pk) == ["a"] and stored_messages(other.pk) == ["b"]
    assert stored_messages(bad.pk) == ["1 log lines dropped: the database refused their content"]
    assert (reporter.dropped_lines, reporter.lost_lines) == (1, 0)


def test_dual_write_stores_both_and_never_waits_for_the_legacy_column(job, use_backend):
    use_backend("sync", dual_write=True)
    with lock_job(job.pk):
        began = time.monotonic()
        job.logger.info("both places")
        assert time.monotonic() - began < 1.0
        assert stored_messages(job.pk) == ["both places"]
    assert flush_job_logs(10)
    assert legacy_stdout(job) == ["both places"]


def test_a_failing_dual_write_never_fails_the_primary(job, project, capsys):
    backend = build_backend("memory", dual_write=True)
    gone = Job.objects.create(project=project, name="deleted")
    gone_id = gone.pk
    gone.delete()
    backend.emit(gone_id, logging.INFO, "primary keeps it", {})
    assert backend.flush(10)
    backend.close(1)
    assert [row.message for row in backend.rows] == ["primary keeps it"]
    assert "legacy JSON dual-write) write failed" in capsys.readouterr().err


def test_concurrent_threads_each_use_their_own_connection(job):
    def log_some(tag: int) -> None:
        try:
            for i in range(50):
                job.logger.info("thread %d line %d", tag, i)
        finally:
            connections["logs"].close()

    threads = [threading.Thread(target=log_some, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert JobLog.objects.filter(job=job).count() == 200


@pytest.mark.parametrize("name", ["sync", "legacy_json"])
def test_logging_from_an_event_loop_never_blocks_it_and_is_stored(name, job, use_backend):
    """An ASGI view may log: Django forbids database calls on the loop's thread."""
    use_backend(name)

    async def view() -> None:
        job.logger.info("from an async view")

    asyncio.run(view())
    assert flush_job_logs(10)
    if name == "sync":
        assert stored_messages(job.pk) == ["from an async view"]
    else:
        assert legacy_stdout(job) == ["from an async view"]
