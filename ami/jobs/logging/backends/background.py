"""A bounded queue drained by one background thread per process, in batches.

Used by the buffered backend (COPY into JobLog) and by dual-write (the legacy JSON column).
`put` never blocks on the database: when the queue is full the line is counted, and the count
is written later as a marker line for its job. The thread starts on first use in each process,
so a forked Celery child never relies on a thread it did not start.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable

from ami.jobs.logging.errors import CONNECTION_ERRORS, LOST_ERRORS, REFUSED_ERRORS, FailureReporter
from ami.jobs.logging.process import current_pid
from ami.jobs.logging.rows import LogRow
from ami.jobs.logging.salvage import write_one_by_one
from ami.jobs.logging.validation import require

IDLE_WAIT = 1.0  # seconds the idle thread sleeps between checks
RETRY_DELAYS = (0.2, 1.0, 2.0)  # seconds between attempts while the connection is down


def overflow_marker(job_id: int, dropped: int) -> LogRow:
    return LogRow(
        job_id=job_id,
        level=logging.WARNING,
        message=f"{dropped} log lines dropped: the job log buffer was full",
        context={"dropped": dropped},
    )


def validate_sizes(*, batch_size: int, interval: float, max_lines: int) -> None:
    """Reject values that would make the thread busy-loop, wait forever or drop every line."""
    require("batch_size", batch_size)
    require("interval", interval)
    require("max_lines", max_lines)


class BackgroundWriter:
    def __init__(
        self,
        write: Callable[[list[LogRow]], None],
        reporter: FailureReporter,
        *,
        retry_write: Callable[[list[LogRow]], None] | None = None,
        name: str,
        batch_size: int,
        interval: float,
        max_lines: int,
        on_thread_exit: Callable[[], None] | None = None,
    ) -> None:
        validate_sizes(batch_size=batch_size, interval=interval, max_lines=max_lines)
        self.write = write
        # After a write that may have committed (connection lost around the commit): must
        # skip rows already stored. Also used to write rows one by one.
        self.retry_write = retry_write or write
        self.reporter = reporter
        self.name = name
        self.batch_size = batch_size
        self.interval = interval  # seconds a line may wait for its batch to fill
        self.max_lines = max_lines
        self.on_thread_exit = on_thread_exit
        self._reset()

    @property
    def dropped_total(self) -> int:
        return self._dropped_total

    def put(self, rows: list[LogRow]) -> None:
        """Queue rows for writing; count (never block on) what does not fit."""
        if current_pid() != self._pid:
            self._reset()
        with self._cond:
            if not self._queue:
                self._oldest_at = time.monotonic()
            for row in rows:
                if len(self._queue) >= self.max_lines:
                    self._dropped[row.job_id] += 1
                    self._dropped_total += 1
                else:
                    self._queue.append(row)
                    self._accepted += 1
            self._ensure_thread()
            if len(self._queue) >= self.batch_size:
                self._cond.notify_all()

    def flush(self, timeout: float | None) -> bool:
        """Wait until every line accepted so far was written (or given up); False on timeout."""
        if current_pid() != self._pid:
            self._reset()
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._accepted
            self._flush_target = max(self._flush_target, target)
            if self._done < target or self._dropped:
                self._ensure_thread()
            self._cond.notify_all()
            while self._done < target:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def stop(self, timeout: float | None) -> bool:
        """Flush, then end the thread (which closes its connection)."""
        flushed = self.flush(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        return flushed

    # -- the thread ----------------------------------------------------------------------

    def _reset(self) -> None:
        self._pid = current_pid()
        self._cond = threading.Condition()
        self._queue: deque[LogRow] = deque()
        self._dropped: Counter[int] = Counter()
        self._dropped_total = 0
        self._accepted = 0  # rows ever queued
        self._done = 0  # rows written or given up
        self._flush_target = 0
        self._oldest_at = 0.0
        self._stopping = False
        self._thread: threading.Thread | None = None

    def _ensure_thread(self) -> None:
        # Called with self._cond held.
        if self._thread is None or not self._thread.is_alive():
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            while (batch := self._next_batch()) is not None:
                rows, markers = batch
                try:
                    self._write_batch_surviving(rows + markers)
                finally:
                    with self._cond:
                        self._done += len(rows)
                        self._cond.notify_all()
        finally:
            if self.on_thread_exit is not None:
                self.on_thread_exit()

    def _write_batch_surviving(self, rows: list[LogRow]) -> None:
        if not rows:
            return
        try:
            self._write_batch(rows)
        except Exception as exc:  # noqa: BLE001
            # The one thread that drains the queue must outlive any bug or hostile value:
            # the batch is counted as lost, the next one is written. (SoftTimeLimitExceeded
            # is raised by a signal handler, in the main thread only, never here.)
            self.reporter.failed(exc, len(rows))

    def _next_batch(self) -> tuple[list[LogRow], list[LogRow]] | None:
        with self._cond:
            while not self._ready():
                if self._stopping and not self._queue and not self._dropped:
                    return None
                self._cond.wait(self._wait_time())
            count = min(self.batch_size, len(self._queue))
            rows = [self._queue.popleft() for _ in range(count)]
            self._oldest_at = time.monotonic()
            markers = []
            if len(self._queue) < self.max_lines:
                markers = [overflow_marker(job, n) for job, n in self._dropped.items()]
                self._dropped.clear()
            return rows, markers

    def _ready(self) -> bool:
        if not self._queue:
            return bool(self._dropped)
        return (
            len(self._queue) >= self.batch_size
            or self._flush_target > self._done
            or self._stopping
            or time.monotonic() - self._oldest_at >= self.interval
        )

    def _wait_time(self) -> float:
        if not self._queue:
            return IDLE_WAIT
        return max(0.001, self.interval - (time.monotonic() - self._oldest_at))

    def _write_batch(self, rows: list[LogRow]) -> None:
        error: BaseException | None = None
        write = self.write
        for delay in (0.0, *RETRY_DELAYS):
            time.sleep(delay)
            try:
                write(rows)
            except CONNECTION_ERRORS as exc:
                # The commit may have happened and only its reply been lost.
                error, write = exc, self.retry_write
                continue
            except LOST_ERRORS as exc:
                self._write_per_job(rows, exc)
                return
            except REFUSED_ERRORS:
                # Some row's content was refused: only that row is dropped (and counted).
                write_one_by_one(self.retry_write, rows, self.reporter)
                return
            self.reporter.succeeded()
            return
        self.reporter.failed(error, len(rows))

    def _write_per_job(self, rows: list[LogRow], first_error: BaseException) -> None:
        # One job's failure (deleted, for the legacy column) must not sink the other jobs'.
        groups: dict[int, list[LogRow]] = {}
        for row in rows:
            groups.setdefault(row.job_id, []).append(row)
        if len(groups) == 1:
            self.reporter.failed(first_error, len(rows))
            return
        for group in groups.values():
            try:
                self.retry_write(group)
            except (*LOST_ERRORS, *REFUSED_ERRORS) as exc:
                self.reporter.failed(exc, len(group))
