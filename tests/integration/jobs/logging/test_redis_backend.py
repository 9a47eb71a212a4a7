"""The `redis` backend on the real Redis and PostgreSQL: what it keeps when processes die.

Writers and drainers that get SIGKILLed run as subprocesses of their own; a drainer is killed
at each point of a batch (before the commit, between the commit and the Redis ack, after the
ack) by wrapping that step of the real code in the subprocess.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime

import pytest
import redis
from django.conf import settings
from django.db import connection

from ami.jobs.logging.backends.redis import (
    RedisBackend,
    drain_until_empty,
    namespace,
)
from ami.jobs.logging.backends.redis_drain import drain_stream, pending_streams
from ami.jobs.logging.backends.redis_stream import Stream, connect, decode, encode, new_token
from ami.jobs.logging.backends.sync import insert_rows_once
from ami.jobs.logging.errors import FailureReporter
from ami.jobs.logging.handler import flush_job_logs
from ami.jobs.logging.rows import LogRow
from ami.jobs.models import JobLog
from tests.support.logs import LOGS_DB, sigkilled_writer, stored_messages

pytestmark = LOGS_DB

# Drains the dead writers' streams, SIGKILLing itself at one step of its first batch.
DRAINER = """
import os, signal, sys, django
django.setup()
from ami.jobs.logging.backends import redis_drain
from ami.jobs.logging.backends.redis import orphan_drainer
phase = sys.argv[1]

def die():
    os.kill(os.getpid(), signal.SIGKILL)

ack = redis_drain.Stream.ack
if phase == "before commit":
    redis_drain.store_entries = lambda entries, reporter: die()
elif phase == "after commit":
    redis_drain.Stream.ack = lambda stream, ids: die()
else:
    def ack_then_die(stream, ids):
        ack(stream, ids)
        die()
    redis_drain.Stream.ack = ack_then_die
orphan_drainer().drain_orphans(30)
"""


@pytest.fixture
def client():
    client = connect(settings.REDIS_URL, 2.0)
    yield client
    client.close()


@pytest.fixture(autouse=True)
def _no_streams_left_behind():
    """Each test starts and ends with no stream of the test database in Redis."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    prefix = namespace().prefix
    client.delete(*client.keys(f"{prefix}:*") or [f"{prefix}:none"])
    yield
    client.delete(*client.keys(f"{prefix}:*") or [f"{prefix}:none"])
    client.close()


def stored_seqs(job) -> list[int]:
    return list(
        JobLog.objects.filter(job=job).order_by("id").values_list("context__seq", flat=True)
    )


def dead_writer_stream(client, job, count: int, writer: int = 0) -> Stream:
    """A stream holding `count` lines whose writer is gone (its lease expires at once)."""
    stream = Stream(client, namespace(), namespace().new_stream_name(90_000 + writer))
    rows = [
        LogRow(job.pk, logging.INFO, f"w{writer} line {seq}", {"seq": seq, "writer": writer})
        for seq in range(count)
    ]
    for start in range(0, count, 100):
        stream.append(rows[start : start + 100], new_token(), 1)
    time.sleep(0.01)  # the 1 ms lease
    return stream


# -- a writer SIGKILLed -----------------------------------------------------------------------


def test_a_sigkilled_writer_loses_no_line_whose_call_returned(job, subprocess_env):
    env = {
        **subprocess_env,
        "JOB_LOG_BACKEND": "redis",
        "JOB_LOG_BUFFER_INTERVAL": "60",  # its own thread does not drain before the kill
        "JOB_LOG_REDIS_LEASE": "4.5",  # renewed every 1.5 s: the kill comes first
        "AMI_LOG_LEVEL": "WARNING",
    }
    returned, returncode = sigkilled_writer(job.pk, env)
    assert returncode == -signal.SIGKILL
    assert len(stored_seqs(job)) < len(returned)  # the lines were waiting in Redis
    assert drain_until_empty(timeout=20) == 0  # once its lease expired, another drainer took them
    stored = stored_seqs(job)
    assert set(returned) <= set(stored)
    assert len(stored) - len(returned) <= 1  # at most the line being appended at the kill
    assert stored == sorted(stored)  # in emit order
    assert max(Counter(stored).values()) == 1


def test_a_live_writers_stream_is_left_to_it(job, use_backend):
    backend = use_backend("redis", interval=60.0, lease=30.0)
    job.logger.info("mine")
    assert backend.drain_orphans(5) == 0  # its lease is held: not an orphan
    assert stored_messages(job.pk) == []
    assert flush_job_logs(10)
    assert stored_messages(job.pk) == ["mine"]


# -- a drainer SIGKILLed --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phase", "stored_at_kill", "left_in_redis"),
    [("before commit", 0, 35), ("after commit", 10, 35), ("after ack", 10, 25)],
)
def test_a_drainer_killed_mid_batch_loses_and_duplicates_nothing(
    phase, stored_at_kill, left_in_redis, job, client, subprocess_env
):
    stream = dead_writer_stream(client, job, 35)
    env = {**subprocess_env, "JOB_LOG_BACKEND": "redis", "JOB_LOG_BUFFER_BATCH_SIZE": "10",
           "JOB_LOG_REDIS_LEASE": "0.5"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", DRAINER, phase], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert len(stored_seqs(job)) == stored_at_kill
    assert client.xlen(stream.name) == left_in_redis
    assert drain_until_empty(timeout=20) == 0  # the next drainer, once the lease expired
    assert stored_seqs(job) == list(range(35))


# -- drainers at once -------------------------------------------------------------------------


def test_two_drainers_at_once_store_each_line_once_in_writer_order(job, client):
    writers, lines = 4, 400
    for writer in range(writers):
        dead_writer_stream(client, job, lines, writer)
    backends = [RedisBackend(batch_size=25, lease=0.5) for _ in range(2)]
    threads = [threading.Thread(target=backend.drain_orphans, args=(30,)) for backend in backends]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert drain_until_empty(timeout=10) == 0
    rows = (
        JobLog.objects.filter(job=job).order_by("id").values_list("context__writer", "context__seq")
    )
    by_writer: dict[int, list[int]] = defaultdict(list)
    for writer, seq in rows:
        by_writer[writer].append(seq)
    assert by_writer == {writer: list(range(lines)) for writer in range(writers)}
    assert sum(backend.reporter.dropped_lines for backend in backends) == 0


def test_a_stream_has_one_drainer_at_a_time(job, client):
    stream = dead_writer_stream(client, job, 5)
    first, second = new_token(), new_token()
    reporter = FailureReporter("test")
    assert stream.hold(first, 30_000)
    assert not drain_stream(stream, second, batch_size=10, lease_ms=30_000, reporter=reporter)
    assert stored_seqs(job) == []
    assert drain_stream(stream, first, batch_size=10, lease_ms=30_000, reporter=reporter)
    assert stored_seqs(job) == list(range(5))


def test_a_batch_delivered_again_stores_only_what_is_missing(job, client):
    """A drainer that died between commit and ack: the next one's COPY meets stored keys."""
    stream = dead_writer_stream(client, job, 20)
    rows = [decode(entry.data) for entry in stream.read(10)]
    insert_rows_once(rows[:7])  # committed, never acked
    assert drain_until_empty(timeout=10) == 0
    assert stored_seqs(job) == list(range(20))


# -- Redis down or slow -----------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_redis_down_lines_go_through_sync_and_emit_never_raises(job, use_backend, capsys):
    url = f"redis://127.0.0.1:{closed_port()}/0"
    backend = use_backend("redis", redis_url=url, redis_timeout=0.5)
    began = time.monotonic()
    for i in range(20):
        job.logger.info("line %d", i)
    assert time.monotonic() - began < 2.0
    assert stored_messages(job.pk) == [f"line {i}" for i in range(20)]  # stored at once
    assert backend.fallback_lines == 20 and backend.reporter.lost_lines == 0
    assert flush_job_logs(5)
    assert capsys.readouterr().err.count("job log Redis unavailable") == 1


def test_a_redis_that_never_answers_costs_one_bounded_wait(job, use_backend):
    """A server that accepts connections and never replies: the timeout bounds the emit, and
    Redis is skipped for a while, so the next lines do not wait again."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        backend = use_backend("redis", redis_url=url, redis_timeout=0.3)
        waits = []
        for i in range(10):
            began = time.monotonic()
            job.logger.info("line %d", i)
            waits.append(time.monotonic() - began)
    assert max(waits) < 1.0
    assert sum(waits) < 1.5  # one timeout, not one per line
    assert stored_messages(job.pk) == [f"line {i}" for i in range(10)]
    assert backend.fallback_lines == 10


# -- what a line keeps ------------------------------------------------------------------------


def test_a_line_keeps_its_emit_time_and_key_through_redis(job, use_backend):
    use_backend("redis", interval=60.0)
    job.logger.info("queued in redis")
    logged_by = datetime.now(UTC)
    time.sleep(0.3)  # not synchronisation: the gap between the emit and the drain
    assert flush_job_logs(10)
    (created_at,) = JobLog.objects.filter(job=job).values_list("created_at", flat=True)
    assert created_at <= logged_by


def test_the_codec_round_trips_hostile_strings_exactly():
    """Rows are sanitised before they get here, but the codec must not rely on it."""
    row = LogRow(
        7, 40, "nul \x00 lone \udc80 emoji \U0001f41b quote \" backslash \\",
        {"k\x00": ["\ud800", 2**70, 1.5, None, {"deep": "\udfff"}]},
    )  # fmt: skip
    data = encode(row).encode()  # what Redis stores: bytes, so the text must encode
    back = decode(data)
    assert (back.job_id, back.level, back.message, back.context) == (
        row.job_id, row.level, row.message, row.context,
    )  # fmt: skip
    assert (back.created_at, back.key) == (row.created_at, row.key)


def test_flush_waits_until_the_lines_are_in_the_database(job, use_backend, client):
    backend = use_backend("redis", interval=60.0)
    for i in range(50):
        job.logger.info("line %d", i)
    assert backend.confirm()  # emit returns before Redis ran the append
    assert client.xlen(backend.stream.name) == 50  # in Redis, not yet stored
    assert flush_job_logs(10)
    assert stored_messages(job.pk) == [f"line {i}" for i in range(50)]
    assert client.xlen(backend.stream.name) == 0
    assert pending_streams(settings.REDIS_URL, namespace(), 1.0) == 1  # ours, while we live


def test_a_forked_child_appends_to_a_stream_of_its_own(job, use_backend):
    """A Celery prefork child: its own stream and drainer, never the parent's lines."""
    backend = use_backend("redis", interval=60.0)
    job.logger.info("parent, in redis before the fork")
    parent_stream = backend.stream.name
    connection.close()  # a child must not share the parent's sockets
    pid = os.fork()
    if pid == 0:  # the child: log, flush, leave without running the parent's cleanup
        code = 1
        try:
            job.logger.info("child")
            ok = flush_job_logs(10) and backend.stream.name != parent_stream
            code = 0 if ok else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert stored_messages(job.pk) == ["child"]
    assert flush_job_logs(10)
    assert stored_messages(job.pk) == ["child", "parent, in redis before the fork"]


def test_the_beat_task_drains_dead_writers_streams(job, client, settings):
    """What Celery beat runs every `JOB_LOGS["DRAIN_INTERVAL"]` seconds, whatever the backend."""
    from ami.jobs.tasks import drain_job_log_streams

    schedule = settings.CELERY_BEAT_SCHEDULE["drain-job-log-streams"]
    assert schedule["task"] == "ami.jobs.tasks.drain_job_log_streams"
    dead_writer_stream(client, job, 30)
    assert drain_job_log_streams() == 1
    assert stored_seqs(job) == list(range(30))
    assert pending_streams(settings.REDIS_URL, namespace(), 1.0) == 0  # retired once empty


# -- pipelined appends ------------------------------------------------------------------------

# Emits `count` lines, then SIGKILLs itself the moment the last `emit` returned.
SELF_KILLER = """
import os, signal, sys, django
django.setup()
from ami.jobs.logging import job_logger
logger = job_logger(int(sys.argv[1]))
writer, count, pad = int(sys.argv[2]), int(sys.argv[3]), "x" * int(sys.argv[4])
for seq in range(count):
    logger.info("w%d line %d %s", writer, seq, pad, extra={"seq": seq, "writer": writer})
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_writer_killed_right_after_its_last_emit_loses_no_line(job, subprocess_env):
    """Five writers each SIGKILL themselves as their last `emit` returns: the kernel delivers
    what they wrote, and the drain stores it once, in order. The last writes 12 MB in 4 KB
    lines, so Redis may still be reading them when the writer dies."""
    env = {
        **subprocess_env,
        "JOB_LOG_BACKEND": "redis",
        "JOB_LOG_BUFFER_INTERVAL": "60",  # its own thread does not drain before the kill
        "JOB_LOG_REDIS_LEASE": "1",
        "AMI_LOG_LEVEL": "WARNING",
    }
    counts, pads = [1, 37, 400, 1500, 3000], [0, 0, 0, 0, 4000]
    for writer, (count, pad) in enumerate(zip(counts, pads, strict=True)):
        done = subprocess.run(
            [sys.executable, "-c", SELF_KILLER, str(job.pk), str(writer), str(count), str(pad)],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == -signal.SIGKILL, done.stderr
    assert drain_until_empty(timeout=30) == 0
    rows = (
        JobLog.objects.filter(job=job).order_by("id").values_list("context__writer", "context__seq")
    )
    by_writer: dict[int, list[int]] = defaultdict(list)
    for writer, seq in rows:
        by_writer[writer].append(seq)
    for writer, count in enumerate(counts):
        seqs = by_writer[writer]
        missing = sorted(set(range(count)) - set(seqs))
        assert seqs == list(range(count)), (writer, len(seqs), missing[:3], missing[-3:])


def test_lines_unanswered_on_a_killed_connection_are_sent_again_and_stored_once(
    job, use_backend, client
):
    backend = use_backend("redis", interval=60.0, redis_timeout=5.0)
    job.logger.info("before")
    assert backend.confirm()
    client.client_pause(10_000, all=False)  # writes wait in Redis, unanswered
    try:
        for i in range(20):
            job.logger.info("line %d", i)
        time.sleep(0.2)  # not synchronisation: the commands reach Redis and wait there
        assert backend.pipeline.unconfirmed() == 20
        host, port = backend.pipeline._conn._sock.getsockname()[:2]
        assert client.client_kill(f"{host}:{port}")
    finally:
        client.client_unpause()
    job.logger.info("after")
    assert flush_job_logs(10)
    expected = ["before", *(f"line {i}" for i in range(20)), "after"]
    assert stored_messages(job.pk) == expected
    assert backend.fallback_lines == 0 and backend.reporter.lost_lines == 0


def test_an_error_reply_is_counted_as_lost_and_the_next_lines_still_go(job, use_backend, client):
    backend = use_backend("redis", interval=60.0)
    job.logger.info("first")
    assert flush_job_logs(10)
    name = backend.stream.name
    client.delete(name)
    client.set(name, "not a stream")  # the next XADD answers WRONGTYPE
    job.logger.info("refused")  # does not raise
    assert backend.confirm()
    assert backend.reporter.lost_lines == 1
    client.delete(name)
    job.logger.info("after")
    assert flush_job_logs(10)
    assert stored_messages(job.pk) == ["first", "after"]
    assert backend.reporter.lost_lines == 1 and backend.fallback_lines == 0


def test_a_line_appended_twice_is_stored_once(job, client):
    """What a resend after a broken connection may leave: entries of one row `key` twice."""
    stream = Stream(client, namespace(), namespace().new_stream_name(90_000))
    rows = [LogRow(job.pk, logging.INFO, f"line {seq}", {"seq": seq}) for seq in range(10)]
    stream.append(rows[:6], new_token(), 1)
    stream.append(rows[3:], new_token(), 1)  # 3, 4 and 5 again, in one batch with the first
    time.sleep(0.01)  # the 1 ms lease
    assert drain_until_empty(timeout=10) == 0
    assert stored_seqs(job) == list(range(10))
