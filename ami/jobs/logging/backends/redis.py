"""`redis`: each line is appended to a Redis stream of this process, then drained to JobLog.

`emit` sends the append (one script call: register the stream, take its lease if free, XADD)
and returns once the kernel holds the command, without waiting for Redis: the connection
runs under `CLIENT REPLY OFF`, and a checkpoint (on `flush()`, and every `MAX_UNCONFIRMED`
lines) proves Redis ran every append before it (`redis_pipeline`). A SIGKILLed process so
loses nothing whose call returned: the kernel still delivers what the process wrote, and
the stream stays in Redis (kept on disk with `appendonly yes`). A connection that breaks is
replaced and the appends since the last checkpoint sent again (a line may be in the stream
twice; it is stored once: the drain skips a `key` already stored). An append Redis refuses
(the key is not a stream, out of memory) is counted as lost at the next checkpoint.
Lines are stored:

- by this process's drainer thread, within `interval` seconds (or when `batch_size` lines
  wait), and on `flush()` (Celery task end, shutdown), which takes a checkpoint and waits
  until every line appended before it is in JobLog;
- once the process is gone (its lease, renewed every `lease`/3 seconds while it lives,
  expired `lease` seconds after the last renewal), by any other drainer: the Celery beat
  task `drain_job_log_streams` (every `JOB_LOGS["DRAIN_INTERVAL"]` seconds) or
  `ami drain_job_logs`.

Each append is the script, not a bare XADD, so a stream that another drainer retired (this
process stalled longer than its lease) is registered again by the next line, never left
where no drainer looks. If Redis is down or slow (no connection, or no checkpoint reply,
within `redis_timeout`), lines are written through the `sync` path instead, with those sent
since the last checkpoint (counted as lost if the database fails too), and
Redis is not tried again for `REDIS_RETRY_AFTER` seconds, so an outage costs one timeout,
not one per line. Lines so written may be stored before older lines still waiting in Redis
(their `created_at` is right). See `redis_stream` (keys, codec, lease) and `redis_drain`
(how a batch is stored).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import redis
from django.conf import settings
from django.db import connections

from ami.jobs.logging.backends.base import JobLogBackend
from ami.jobs.logging.backends.redis_drain import drain_orphans, drain_stream, pending_streams
from ami.jobs.logging.backends.redis_pipeline import READER_NAME, Pipeline
from ami.jobs.logging.backends.redis_stream import (
    APPEND,
    CHECKPOINT,
    REDIS_ERRORS,
    Namespace,
    Stream,
    StreamId,
    connect,
    new_token,
    parse_id,
)
from ami.jobs.logging.backends.sync import insert_rows
from ami.jobs.logging.config import job_logs_setting
from ami.jobs.logging.connection import discard, log_connection
from ami.jobs.logging.errors import LOST_ERRORS
from ami.jobs.logging.process import current_pid
from ami.jobs.logging.rows import LogRow
from ami.jobs.logging.validation import constructor_options, require

DEFAULT_REDIS_TIMEOUT = 0.5  # seconds a Redis call may take before the line goes to `sync`
DEFAULT_LEASE = 5.0  # seconds a dead writer's stream waits before another drainer takes it
REDIS_RETRY_AFTER = 1.0  # seconds Redis is skipped after a failure
RETRY_DELAY = 1.0  # seconds the drainer waits after a failed pass (Redis or database down)
ORPHAN_BUDGET = 30.0  # seconds one orphan pass may take


def namespace() -> Namespace:
    """The streams of the database in use (read at call time: tests switch databases)."""
    return Namespace(str(connections["default"].settings_dict["NAME"]))


def _text(value: bytes | str | None) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _after(first: StreamId | None, appended: StreamId) -> StreamId:
    """Every entry below the returned id is gone from the stream (stored)."""
    return first if first is not None else (appended[0], appended[1] + 1)


class RedisBackend(JobLogBackend):
    name = "redis"

    def __init__(
        self,
        *,
        redis_url: str | None = None,
        redis_timeout: float = DEFAULT_REDIS_TIMEOUT,
        lease: float = DEFAULT_LEASE,
        **kwargs: Any,
    ) -> None:
        """`redis_url` (default: the `REDIS_URL` setting), `redis_timeout` (a Redis call's
        longest wait) and `lease` (see the module), plus the base's options."""
        require("redis_url", redis_url)
        require("redis_timeout", redis_timeout)
        require("lease", lease)
        super().__init__(**kwargs)
        self.redis_url = redis_url or settings.REDIS_URL
        self.redis_timeout = redis_timeout
        self.lease_ms = max(1, round(lease * 1000))
        self.fallback_lines = 0  # lines written through `sync` because Redis failed
        self._start_process()

    # -- emit ------------------------------------------------------------------------------

    def write_rows(self, rows: list[LogRow]) -> None:
        insert_rows(rows)  # the fallback's write (the base's write_guarded calls it)

    def release_thread_resources(self) -> None:
        discard(log_connection())

    def submit(self, rows: list[LogRow]) -> None:
        if time.monotonic() >= self._skip_redis_until:
            try:
                self.pipeline.send(rows)
            except REDIS_ERRORS as exc:
                self._redis_failed(exc)
            else:
                self._sent(len(rows))
                return
        self._fall_back(rows)

    def _fall_back(self, rows: list[LogRow]) -> None:
        self.fallback_lines += len(rows)
        super().submit(rows)  # `sync`: now, or on a thread from an event loop

    def confirm(self) -> bool:
        """Wait until Redis ran every append sent (a checkpoint, see `redis_pipeline`);
        count the lines it refused as lost. False if it could not be confirmed."""
        try:
            reply = self.pipeline.checkpoint()
        except REDIS_ERRORS as exc:
            self.reporter.failed(exc, 0)  # the lines are re-sent, or written by `sync`
            return False
        if reply is None:
            return True
        last, refused, error = reply
        if refused:
            self.reporter.failed(redis.ResponseError(_text(error)), int(refused))
        if last:
            with self._cond:
                self._last_appended = max(self._last_appended, parse_id(last))
        return True

    def _orphaned(self, rows: list[LogRow], exc: BaseException) -> None:
        """Sent, unanswered, and no new connection to send them again: write them now."""
        self._redis_failed(exc)
        if rows:
            self._fall_back(rows)
        if threading.current_thread().name == READER_NAME:
            discard(log_connection())  # that thread rarely writes to the database

    def _redis_failed(self, exc: BaseException) -> None:
        first = self._skip_redis_until == 0.0
        self._skip_redis_until = time.monotonic() + REDIS_RETRY_AFTER
        if first:
            # stderr, never `logging`: the report must not re-enter the job logger.
            sys.stderr.write(
                f"ami.jobs.logging: job log Redis unavailable ({type(exc).__name__}: "
                f"{str(exc)[:200]}); writing lines through the database directly\n"
            )

    def _sent(self, count: int) -> None:
        self._skip_redis_until = 0.0
        with self._cond:
            first = self._pending == 0
            if first:
                self._oldest_at = time.monotonic()
            self._pending += count
            self._ensure_thread()
            # The first line re-times the thread's wait (it may be waiting for a lease
            # renewal, seconds away); a full batch wakes it at once.
            if first or self._pending >= self.queue_options["batch_size"]:
                self._cond.notify_all()

    # -- flush and close ---------------------------------------------------------------------

    def flush_writes(self, timeout: float | None) -> bool:
        """Wait until every line this process appended is in JobLog (drained by anyone)."""
        if current_pid() != self._pid_started:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self.confirm():
            return False
        with self._cond:
            target = self._last_appended
            while self._gone_below <= target:
                self._flush_target = max(self._flush_target, target)
                self._ensure_thread()
                self._cond.notify_all()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def close(self, timeout: float | None = None) -> bool:
        flushed = super().close(timeout)
        self.pipeline.stop(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        return flushed

    def after_fork(self) -> None:
        self._start_process()

    # -- orphans -----------------------------------------------------------------------------

    def drain_orphans(self, budget: float = ORPHAN_BUDGET) -> int:
        """Drain the streams of writers that are gone (lease expired); see `redis_drain`."""
        return drain_orphans(
            url=self.redis_url,
            namespace=namespace(),
            timeout=self.redis_timeout,
            batch_size=self.queue_options["batch_size"],
            lease_ms=self.lease_ms,
            reporter=self.reporter,
            budget=budget,
        )

    # -- the drainer thread ------------------------------------------------------------------

    def _start_process(self) -> None:
        """This process's stream, lease token and thread state (again in a forked child)."""
        self._pid_started = current_pid()
        self.client = connect(self.redis_url, self.redis_timeout)
        self.stream = Stream(self.client, namespace(), namespace().new_stream_name(current_pid()))
        self.token = new_token()
        self.pipeline = Pipeline(
            url=self.redis_url,
            timeout=self.redis_timeout,
            scripts=[APPEND, CHECKPOINT],
            command=lambda rows: self.stream.append_command(rows, self.token, self.lease_ms),
            checkpoint=self.stream.checkpoint_command,
            orphaned=self._orphaned,
        )
        self._skip_redis_until = 0.0
        self._cond = threading.Condition()
        self._pending = 0  # lines appended since the thread's last pass began
        self._oldest_at = 0.0  # when the oldest line not yet in a pass was appended
        self._last_pass = time.monotonic()
        self._last_appended: StreamId = (0, 0)
        self._gone_below: StreamId = (0, 1)  # every entry below this id is stored
        self._flush_target: StreamId = (0, 0)
        self._stopping = False
        self._thread: threading.Thread | None = None

    def _ensure_thread(self) -> None:
        # Called with self._cond held.
        if self._thread is None or not self._thread.is_alive():
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="ami-joblog-redis", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            while self._wait_for_work():
                if not self._pass():
                    time.sleep(RETRY_DELAY)
        finally:
            discard(log_connection())
            self._give_back()

    def _wait_for_work(self) -> bool:
        """Wait until a pass is due; False once asked to stop with nothing left to store."""
        with self._cond:
            while not self._due():
                if self._stopping and self._nothing_waits():
                    return False
                self._cond.wait(self._wait_time())
            self._pending = 0
            return True

    def _renew_every(self) -> float:
        return self.lease_ms / 3000  # a pass renews the lease: three chances before it expires

    def _nothing_waits(self) -> bool:
        """No line sent since the last pass began, every line confirmed is stored."""
        return self._pending == 0 and self._gone_below > self._last_appended

    def _due(self) -> bool:
        now = time.monotonic()
        if now - self._last_pass >= self._renew_every():
            return True
        if self._nothing_waits():
            return False
        return (
            self._pending >= self.queue_options["batch_size"]
            or self._flush_target >= self._gone_below
            or self._stopping
            or now - self._oldest_at >= self.queue_options["interval"]
        )

    def _wait_time(self) -> float:
        now = time.monotonic()
        renew = self._renew_every() - (now - self._last_pass)
        if self._nothing_waits():
            return max(0.001, renew)
        return max(0.001, min(renew, self.queue_options["interval"] - (now - self._oldest_at)))

    def _pass(self) -> bool:
        """Drain our stream once; record how far it is stored. False if the pass failed."""
        with self._cond:
            appended = self._last_appended
            self._last_pass = time.monotonic()
        try:
            drain_stream(
                self.stream,
                self.token,
                batch_size=self.queue_options["batch_size"],
                lease_ms=self.lease_ms,
                reporter=self.reporter,
            )
            gone_below = _after(self.stream.first_id(), appended)
        except (*REDIS_ERRORS, *LOST_ERRORS) as exc:
            self.reporter.failed(exc, 0)  # reported; the lines wait in Redis, not lost
            return False
        except Exception as exc:  # noqa: BLE001
            # The thread that stores this process's lines must outlive any bug; the lines
            # stay in Redis for the next pass. (SoftTimeLimitExceeded is raised in the main
            # thread only, never here.)
            self.reporter.failed(exc, 0)
            return False
        with self._cond:
            self._gone_below = max(self._gone_below, gone_below)
            self._cond.notify_all()
        return True

    def _give_back(self) -> None:
        """At thread end: drop the stream if it is empty, free the lease for other drainers."""
        try:
            if not self.stream.retire(self.token):
                self.stream.release(self.token)
        except REDIS_ERRORS:
            pass  # the lease expires by itself


def orphan_drainer() -> RedisBackend:
    """A redis backend built from `JOB_LOGS["OPTIONS"]` (those it takes), to drain orphans
    whatever backend this process logs with."""
    known = constructor_options(RedisBackend)
    options = job_logs_setting()["OPTIONS"]
    return RedisBackend(**{name: value for name, value in options.items() if name in known})


def drain_orphan_streams(budget: float = ORPHAN_BUDGET) -> int:
    """Drain the streams of dead writers once; Redis or the database being down is
    reported (the lines wait in Redis), not raised."""
    try:
        return orphan_drainer().drain_orphans(budget)
    except (*REDIS_ERRORS, *LOST_ERRORS) as exc:
        sys.stderr.write(f"ami.jobs.logging: job log streams not drained yet: {exc}\n")
        return 0


def drain_until_empty(timeout: float, poll: float = 0.5) -> int:
    """Drain dead writers' streams until none is left (each waits for its lease to expire);
    return how many streams are still registered at the end (0: every line is stored)."""
    drainer = orphan_drainer()
    deadline = time.monotonic() + timeout
    while True:
        drainer.drain_orphans(max(0.0, deadline - time.monotonic()))
        left = pending_streams(drainer.redis_url, namespace(), drainer.redis_timeout)
        if left == 0 or time.monotonic() >= deadline:
            return left
        time.sleep(poll)
