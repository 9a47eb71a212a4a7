"""The base backend owns the algorithm; each backend supplies the write primitive.

`emit` sanitises a line, collapses storms of identical lines, applies the job's log budget
(`ami.jobs.logging.budget`: past it, only the first and last lines and WARNING or worse are
stored, the rest counted), and hands the rows to `submit`. The base `submit` writes at once
through `write_rows` and absorbs database errors (reported once per burst on stderr).
A backend may override:

- `write_rows(rows)`: store rows, raising on database errors (required);
- `submit(rows)`: deliver rows some other way (the buffered backend enqueues them);
- `flush_writes(timeout)`: wait for rows accepted earlier to be stored;
- `release_thread_resources()`: close what a short-lived thread opened;
- `after_fork()`: drop per-process state inherited from the parent.

The budget is kept in `budget_ledger` (a class attribute: the shared table by default, this
process's memory for the `memory` backend); its rows reach `submit` like any other, so every
backend, and every subclass, gets it.

The constructor's keywords are the backend's options (`JOB_LOGS["OPTIONS"]`, see
`ami.jobs.logging.config`), and their defaults here are the only ones.

Called from a thread that runs an asyncio event loop (an ASGI view), a backend that would
block on the database hands the rows to a background thread instead: Django forbids
database calls there, and the loop must not wait.

With a `secondary` writer (dual-write) every delivered row is also queued to it; it runs on
its own thread and connection, so it can neither fail nor slow the primary write. The queue
options (`batch_size`, `interval`, `max_lines`) are the base's, since any backend may have a
queue: the dual-write target's, and the buffered backend's own.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from ami.jobs.logging.backends.background import BackgroundWriter, validate_sizes
from ami.jobs.logging.budget import (
    DEFAULT_BUDGET_BYTES,
    DEFAULT_BUDGET_LINES,
    DEFAULT_BUDGET_TAIL,
    JobBudget,
    Limits,
)
from ami.jobs.logging.budget_ledger import Ledger, TableLedger
from ami.jobs.logging.errors import LOST_ERRORS, REFUSED_ERRORS, FailureReporter
from ami.jobs.logging.process import current_pid
from ami.jobs.logging.rows import LogRow
from ami.jobs.logging.salvage import write_one_by_one
from ami.jobs.logging.sanitize import clean_context, clean_message
from ami.jobs.logging.storms import RepeatCollapser
from ami.jobs.logging.validation import require

DEFAULT_MAX_MESSAGE_CHARS = 16_384
DEFAULT_REPEAT_WINDOW = 1.0  # seconds a "last message repeated N times" count may wait
DEFAULT_BATCH_SIZE = 1000  # lines per write of a queue (a COPY, for the buffered backend)
DEFAULT_INTERVAL = 0.25  # seconds a line may wait in a queue for its batch to fill
DEFAULT_MAX_LINES = 50_000  # queue bound: beyond it lines are counted as dropped
LOOP_WRITER_INTERVAL = 0.05  # seconds a line logged from an event loop waits for its batch


def in_event_loop() -> bool:
    """True if this thread runs an asyncio event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class SecondaryWriter:
    """What the base needs from a dual-write target (see `BackgroundWriter`)."""

    def put(self, rows: list[LogRow]) -> None:
        raise NotImplementedError

    def flush(self, timeout: float | None) -> bool:
        raise NotImplementedError

    def stop(self, timeout: float | None) -> bool:
        raise NotImplementedError


class JobOrder:
    """Deliver each job's rows in the order the collapser produced them.

    Rows are queued per stripe of jobs while the backend's lock is held (so queue order is
    production order), and delivered outside it: whoever holds a stripe's lock delivers
    what was queued there when it got the lock, its own rows included. A repeat count
    taken by the timer thread or a flush can so never be stored after the job's next line,
    and no thread holds the backend's lock during a database write. Lines emitted while no
    such count is being delivered skip the queue (the backend's `_out_of_band`).
    """

    STRIPES = 64

    def __init__(self) -> None:
        self._locks = [threading.Lock() for _ in range(self.STRIPES)]
        self._queues: list[deque[LogRow]] = [deque() for _ in range(self.STRIPES)]

    def enqueue(self, rows: list[LogRow]) -> list[int]:
        """Queue rows (call with the backend's lock held); return the stripes to drain."""
        stripes = []
        for row in rows:
            stripe = row.job_id % self.STRIPES
            self._queues[stripe].append(row)
            if stripe not in stripes:
                stripes.append(stripe)
        return stripes

    def drain(self, stripes: list[int], deliver: Callable[[list[LogRow]], None]) -> None:
        """Deliver what is queued in `stripes`, in order (call without the backend's lock).

        Stripes are taken one at a time, never nested, so no two threads can deadlock.
        """
        for stripe in stripes:
            with self._locks[stripe]:
                queue = self._queues[stripe]
                if len(queue) == 1:
                    deliver([queue.popleft()])
                elif queue:
                    deliver([queue.popleft() for _ in range(len(queue))])

    def drain_all(self, deliver: Callable[[list[LogRow]], None]) -> None:
        self.drain([i for i, queue in enumerate(self._queues) if queue], deliver)


class JobLogBackend:
    name = "base"
    blocking = True  # write_rows waits on the database
    dual_writable = True  # may take the legacy column as a secondary target
    budget_ledger: type[Ledger] = TableLedger  # where the per-job budget is shared

    def __init__(
        self,
        *,
        max_message_chars: int = DEFAULT_MAX_MESSAGE_CHARS,
        repeat_window: float = DEFAULT_REPEAT_WINDOW,
        batch_size: int = DEFAULT_BATCH_SIZE,
        interval: float = DEFAULT_INTERVAL,
        max_lines: int = DEFAULT_MAX_LINES,
        budget_lines: int = DEFAULT_BUDGET_LINES,
        budget_bytes: int = DEFAULT_BUDGET_BYTES,
        budget_tail: int = DEFAULT_BUDGET_TAIL,
        secondary: Callable[..., SecondaryWriter] | None = None,
    ) -> None:
        """`secondary` builds the dual-write target from the queue options (`batch_size`,
        `interval`, `max_lines`). `budget_*`: the per-job log budget (0: no limit)."""
        require("max_message_chars", max_message_chars)
        require("repeat_window", repeat_window)
        for option, value in [
            ("budget_lines", budget_lines), ("budget_bytes", budget_bytes),
            ("budget_tail", budget_tail),
        ]:  # fmt: skip
            require(option, value)
        self.budget_limits = Limits(budget_lines, budget_bytes, budget_tail)
        validate_sizes(batch_size=batch_size, interval=interval, max_lines=max_lines)
        self.max_message_chars = max_message_chars
        self.repeat_window = repeat_window
        self.queue_options = dict(batch_size=batch_size, interval=interval, max_lines=max_lines)
        self.secondary = secondary(**self.queue_options) if secondary is not None else None
        self._reset_process_state()

    # -- the algorithm -------------------------------------------------------------------

    def emit(self, job_id: int, level: int, message: str, context: dict[str, Any]) -> None:
        """Store one line for a job; never raises a database error."""
        if current_pid() != self._pid:
            self._reset_process_state()
            self.after_fork()
        row = LogRow(
            job_id=job_id,
            level=level,
            message=clean_message(message, self.max_message_chars),
            context=clean_context(context),
        )
        with self._lock:
            rows, pending = self._collapser.feed(row)
            if pending:
                self._schedule_repeat_flush()
            # Only while the timer or a flush delivers rows it took do this thread's rows
            # have to queue behind them; otherwise they go straight out (the hot path).
            stripes = self._order.enqueue(rows) if self._out_of_band else []
        if stripes:
            self._order.drain(stripes, self._deliver)
        elif rows:
            self._deliver(rows)

    def flush(self, timeout: float | None = None) -> bool:
        """Write pending repeat counts and wait for accepted lines; False on timeout."""
        with self._lock:
            self._queue_out_of_band(self._collapser.due(everything=True))
        self._deliver_out_of_band()
        # The budget's last lines, after every repeat count has gone through the budget.
        tails = self._budget.take_tails()
        if tails:
            self._deliver_admitted(tails)
        stored = self.flush_writes(timeout)
        if self._loop_writer is not None:
            stored = self._loop_writer.flush(timeout) and stored
        if self.secondary is not None:
            stored = self.secondary.flush(timeout) and stored
        return stored

    def close(self, timeout: float | None = None) -> bool:
        """Flush and stop background work (process shutdown)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        flushed = self.flush(timeout)
        if self._loop_writer is not None:
            self._loop_writer.stop(timeout)
        if self.secondary is not None:
            self.secondary.stop(timeout)
        self._budget.close()
        return flushed

    # -- primitives ----------------------------------------------------------------------

    def write_rows(self, rows: list[LogRow]) -> None:
        raise NotImplementedError

    def submit(self, rows: list[LogRow]) -> None:
        if self.blocking and in_event_loop():
            self._event_loop_writer().put(rows)
        else:
            self.write_guarded(rows)

    def flush_writes(self, timeout: float | None) -> bool:
        return True

    def release_thread_resources(self) -> None:
        """Hook: a timer thread is done writing."""

    def after_fork(self) -> None:
        """Hook: this object was inherited by a forked child process."""

    # -- helpers -------------------------------------------------------------------------

    def write_guarded(self, rows: list[LogRow]) -> bool:
        """Write rows; absorb, count and report a write error. Return True if all stored.

        Rows the database refuses are retried one by one, so only the bad ones are dropped.
        """
        try:
            self.write_rows(rows)
        except LOST_ERRORS as exc:
            self.reporter.failed(exc, len(rows))
            return False
        except REFUSED_ERRORS:
            write_one_by_one(self.write_rows, rows, self.reporter)
            return False
        self.reporter.succeeded()
        return True

    def _deliver(self, rows: list[LogRow]) -> None:
        rows = self._budget.admit(rows)
        if rows:
            self._deliver_admitted(rows)

    def _deliver_admitted(self, rows: list[LogRow]) -> None:
        self.submit(rows)
        if self.secondary is not None:
            self.secondary.put(rows)

    def _reset_process_state(self) -> None:
        if getattr(self, "_budget", None) is not None:
            self._budget.close()  # in a forked child: keeps, never closes, the parent's
        # A new budget state per process: a child must not spend its parent's grants.
        self._budget = JobBudget(self.budget_limits, self.budget_ledger())
        self._pid = current_pid()
        self._lock = threading.Lock()
        self._collapser = RepeatCollapser(self.repeat_window)
        self._order = JobOrder()
        self._out_of_band = 0  # timer or flush deliveries in progress
        self._timer: threading.Timer | None = None
        self._loop_writer: BackgroundWriter | None = None
        self.reporter = FailureReporter(f"job log ({self.name})")

    def _queue_out_of_band(self, rows: list[LogRow]) -> None:
        """Queue rows the timer or a flush took (with self._lock held); from now until
        `_deliver_out_of_band` has delivered them, lines emitted queue behind them."""
        self._order.enqueue(rows)
        self._out_of_band += 1

    def _deliver_out_of_band(self) -> None:
        """Deliver what `_queue_out_of_band` queued (call once after each call to it)."""
        try:
            self._order.drain_all(self._deliver)
        finally:
            with self._lock:
                self._out_of_band -= 1

    def _event_loop_writer(self) -> BackgroundWriter:
        with self._lock:
            if self._loop_writer is None:
                self._loop_writer = BackgroundWriter(
                    self.write_rows,
                    self.reporter,
                    name=f"ami-joblog-{self.name}-async",
                    batch_size=1000,
                    interval=LOOP_WRITER_INTERVAL,
                    max_lines=50_000,
                    on_thread_exit=self.release_thread_resources,
                )
            return self._loop_writer

    def _schedule_repeat_flush(self) -> None:
        # Called with self._lock held.
        delay = self._collapser.next_due_in()
        if self._timer is not None or delay is None:
            return
        self._timer = threading.Timer(delay + 0.01, self._write_due_repeats)
        self._timer.daemon = True
        self._timer.start()

    def _write_due_repeats(self) -> None:
        try:
            with self._lock:
                self._timer = None
                self._queue_out_of_band(self._collapser.due())
                self._schedule_repeat_flush()
            self._deliver_out_of_band()
        finally:
            self.release_thread_resources()
