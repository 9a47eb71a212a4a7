"""The per-job log budget: past it, a job keeps its first lines, its last lines and every
WARNING or worse, and counts the rest ("N lines elided").

The budget counts lines below WARNING and their bytes (`line_bytes`), across every process
writing the job. Each process takes it in chunks from a ledger shared by all of them
(`budget_ledger.TableLedger`: one guarded statement per chunk, never one per line) and
stores a line only from its own chunk, so the job's stored lines never exceed the budget.

- The head: the first lines, while chunks are granted from the budget minus its tail share.
- The tail: once a process is refused, its lines below WARNING go to a ring of the last
  `tail` lines per job; what falls out of the ring is elided. At a flush (Celery task end,
  process shutdown) the ring is written, within the tail share (`TAIL_SHARE`, 10 % of the
  budget), newest lines first; what the share cannot take is elided. So the last lines
  of each process survive while the share lasts, and still within the budget.
- WARNING and worse are always stored and never counted: a budget must not hide why a job
  failed. (Storms of identical lines are collapsed before the budget, `storms.py`.)
- Elided lines are added to the ledger at flushes and every chunk's worth of lines; the
  log API and the job page show the job's total ("N lines elided").

A ledger that fails (database unreachable, lock timeout, table not migrated yet) fails
open: the line is stored without a grant, and for the next `RETRY_AFTER` seconds (doubling
on each failure in a row, up to `MAX_RETRY_AFTER`) this process stores without asking, then
asks again; a tail is written whole, a count waits for the next flush. Failing closed would
hide an outage: lines that cannot be stored would be counted as elided instead of reported
as lost, and a deploy ahead of its migration would elide every job's lines. The cost is
bounded: past the budget, only a process that cannot reach the ledger stores more, for
the seconds it cannot; and the ledger is asked once per backoff, so a caller waits at most
one connect timeout per backoff for it.

Not thread-safe by itself: the backend calls `admit` from any thread; it takes its own lock,
also across a reservation (one short statement per chunk).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from ami.jobs.logging.budget_ledger import Ledger
from ami.jobs.logging.errors import WRITE_ERRORS
from ami.jobs.logging.rows import LogRow

DEFAULT_BUDGET_LINES = 500_000  # eda-server's cap per run
DEFAULT_BUDGET_BYTES = 256 * 2**20  # ~500k lines of a typical 200 bytes, with room
DEFAULT_BUDGET_TAIL = 100  # last lines kept per job and process
UNLIMITED = 2**62  # a limit of 0 means none: stored as a bound no job reaches
TAIL_SHARE = 10  # percent of the budget kept for the tails
CHUNKS = 32  # a chunk is this fraction of the head share...
MAX_CHUNK_LINES = 1000  # ...but at most this many lines
MAX_CHUNK_BYTES = 2**20  # and bytes
RETRY_AFTER = 5.0  # seconds a process stores without asking after the ledger failed
MAX_RETRY_AFTER = 60.0  # the longest of those, after failures in a row
MAX_TRACKED_JOBS = 1024  # jobs whose budget state a process keeps; the oldest is retired


# Built once: `json.dumps` with a keyword builds a new encoder on every call.
_encode_context = json.JSONEncoder(ensure_ascii=False).encode


def text_bytes(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def line_bytes(row: LogRow) -> int:
    """A line's size for the budget: the UTF-8 length of its (sanitised) message plus that
    of its context as JSON (`json.dumps`, default separators, non-ASCII kept as is)."""
    return text_bytes(row.message) + context_bytes(row.context)


def _plain(text: str) -> bool:
    """A string JSON writes as itself between quotes (no escapes)."""
    return text.isascii() and text.isprintable() and '"' not in text and "\\" not in text


def _scalar_bytes(value: object) -> int | None:
    """The JSON length of a common flat value, computed without encoding; None otherwise."""
    if isinstance(value, str):
        return len(value) + 2 if _plain(value) else None
    if value is None or value is True:
        return 4
    if value is False:
        return 5
    if type(value) is int:
        return len(str(value))
    return None


def context_bytes(context: dict) -> int:
    """`text_bytes(json.dumps(context, ensure_ascii=False))`, without encoding a flat context
    of plain keys, strings, ints and booleans (the common line: a third of the cost)."""
    size = 2 * len(context) if context else 2  # "{}" and ", " between items, ": " in each
    for key, value in context.items():
        value_size = _scalar_bytes(value)
        if value_size is None or not (isinstance(key, str) and _plain(key)):
            return text_bytes(_encode_context(context))
        size += len(key) + 4 + value_size  # the key's quotes and ": "
    return size


BIGINT = range(-(2**63), 2**63)


def counted(row: LogRow) -> bool:
    """Whether a line counts against the budget: below WARNING, and of a job id the ledger
    can hold (PostgreSQL's bigint). A line of any other id is left to the writer, which
    refuses it and counts it as dropped, as without a budget."""
    return row.level < logging.WARNING and row.job_id in BIGINT


@dataclass(frozen=True)
class Limits:
    lines: int = DEFAULT_BUDGET_LINES  # 0: no limit on lines
    bytes: int = DEFAULT_BUDGET_BYTES  # 0: no limit on bytes
    tail: int = DEFAULT_BUDGET_TAIL  # 0: no tail kept

    @property
    def enabled(self) -> bool:
        return bool(self.lines or self.bytes)

    @property
    def total(self) -> tuple[int, int]:
        return self.lines or UNLIMITED, self.bytes or UNLIMITED

    @property
    def head(self) -> tuple[int, int]:
        """The budget minus the tail share (at least one line and one byte)."""
        return tuple(max(1, n - n * TAIL_SHARE // 100) for n in self.total)

    @property
    def chunk(self) -> tuple[int, int]:
        lines, size = self.head
        return (
            min(MAX_CHUNK_LINES, max(1, lines // CHUNKS)),
            min(MAX_CHUNK_BYTES, max(1, size // CHUNKS)),
        )


@dataclass
class JobState:
    """One job's budget in this process."""

    lines: int = 0  # granted and not yet used
    bytes: int = 0
    exhausted: bool = False  # the head share refused this process: no more asking
    tail: deque[tuple[LogRow, int]] = field(default_factory=deque)  # (row, bytes)
    elided_lines: int = 0  # not yet added to the ledger
    elided_bytes: int = 0

    def take(self, size: int) -> bool:
        if self.lines >= 1 and self.bytes >= size:
            self.lines -= 1
            self.bytes -= size
            return True
        return False


class JobBudget:
    def __init__(self, limits: Limits, ledger: Ledger) -> None:
        self.limits = limits
        self.ledger = ledger
        # Computed once: read on every line.
        self._total, self._head, self._chunk = limits.total, limits.head, limits.chunk
        self._lock = threading.Lock()
        self._jobs: OrderedDict[int, JobState] = OrderedDict()
        self._retired: list[tuple[int, JobState]] = []
        self._retry_at = 0.0  # time.monotonic() before which the failed ledger is not asked
        self._failures = 0  # in a row

    def admit(self, rows: list[LogRow]) -> list[LogRow]:
        """The rows to store now; the others go to their job's tail or are counted."""
        if not self.limits.enabled:
            return rows
        admitted: list[LogRow] = []
        due: list[tuple[int, int, int]] = []
        with self._lock:
            for row in rows:
                if not counted(row) or self._admit(row, due):
                    admitted.append(row)
        if due:
            self._add_elided(due)
        return admitted

    def take_tails(self) -> list[LogRow]:
        """The rows of every job's tail that fit the tail share, oldest first; the rest and
        every pending count go to the ledger (call at a flush, outside any backend lock)."""
        with self._lock:
            states = [*self._retired, *self._jobs.items()]
            self._retired = []
            work = [(job_id, _take_tail(state)) for job_id, state in states]
        kept: list[LogRow] = []
        counts = []
        for job_id, (tail, lines, size) in work:
            rows, more_lines, more_bytes = self._fit_tail(job_id, tail)
            kept.extend(rows)
            if lines + more_lines:
                counts.append((job_id, lines + more_lines, size + more_bytes))
        self._add_elided(counts)
        return kept

    def close(self) -> None:
        self.ledger.close()

    # -- inside the lock -------------------------------------------------------------------

    def _admit(self, row: LogRow, due: list[tuple[int, int, int]]) -> bool:
        """Whether to store `row` now; else it goes to the tail. A chunk's worth of elided
        lines is taken into `due`, to be added to the ledger."""
        state = self._state(row.job_id)
        size = line_bytes(row)
        if state.take(size) or self._reserve(row.job_id, state, size):
            return True
        state.tail.append((row, size))
        if len(state.tail) > self.limits.tail:
            _, dropped = state.tail.popleft()
            state.elided_lines += 1
            state.elided_bytes += dropped
            if state.elided_lines >= self._chunk[0]:
                due.append((row.job_id, state.elided_lines, state.elided_bytes))
                state.elided_lines = state.elided_bytes = 0
        return False

    def _reserve(self, job_id: int, state: JobState, size: int) -> bool:
        """Take a chunk for a line that did not fit; whether the line may be stored."""
        if state.exhausted:
            return False
        if self._ledger_down():
            return True  # fail open (module doc)
        chunk_lines, chunk_bytes = self._chunk
        line_limit, byte_limit = self._head
        try:
            lines, granted = self.ledger.reserve(
                job_id, chunk_lines, max(chunk_bytes, size),
                line_limit=line_limit, byte_limit=byte_limit,
            )  # fmt: skip
        except WRITE_ERRORS:
            self._ledger_failed()
            return True
        self._failures = 0
        state.lines += lines
        state.bytes += granted
        if state.take(size):
            return True
        state.exhausted = True  # the head share is spent (or has less left than this line)
        return False

    def _state(self, job_id: int) -> JobState:
        state = self._jobs.get(job_id)
        if state is None:
            state = self._jobs[job_id] = JobState()
            while len(self._jobs) > MAX_TRACKED_JOBS:
                self._retired.append(self._jobs.popitem(last=False))
        else:
            self._jobs.move_to_end(job_id)
        return state

    # -- outside the lock ------------------------------------------------------------------

    def _fit_tail(self, job_id: int, tail: list[tuple[LogRow, int]]) -> tuple[list, int, int]:
        """Reserve the tail from the whole budget; return the newest rows that fit, oldest
        first, and the lines and bytes left out."""
        if not tail:
            return [], 0, 0
        line_limit, byte_limit = self._total
        want = sum(size for _, size in tail)
        if self._ledger_down():
            return [row for row, _ in tail], 0, 0  # fail open
        try:
            lines, size = self.ledger.reserve(
                job_id, len(tail), want, line_limit=line_limit, byte_limit=byte_limit
            )
        except WRITE_ERRORS:
            self._ledger_failed()
            return [row for row, _ in tail], 0, 0
        kept: list[LogRow] = []
        for row, row_size in reversed(tail):
            if len(kept) == lines or row_size > size:
                break
            kept.append(row)
            size -= row_size
        kept.reverse()
        left_out = tail[: len(tail) - len(kept)]
        return kept, len(left_out), sum(row_size for _, row_size in left_out)

    def _add_elided(self, counts: list[tuple[int, int, int]]) -> None:
        for job_id, lines, size in counts:
            if self._ledger_down():
                self._restore_count(job_id, lines, size)
                continue
            try:
                self.ledger.add_elided(job_id, lines, size)
            except WRITE_ERRORS:
                self._ledger_failed()
                self._restore_count(job_id, lines, size)

    def _ledger_down(self) -> bool:
        return time.monotonic() < self._retry_at

    def _ledger_failed(self) -> None:
        """Back off: `RETRY_AFTER` seconds, doubled for each failure in a row."""
        self._failures += 1
        delay = min(MAX_RETRY_AFTER, RETRY_AFTER * 2 ** min(self._failures - 1, 16))
        self._retry_at = time.monotonic() + delay

    def _restore_count(self, job_id: int, lines: int, size: int) -> None:
        """Keep a count the ledger could not take for the next attempt (a later flush)."""
        with self._lock:
            state = self._state(job_id)
            state.elided_lines += lines
            state.elided_bytes += size


def _take_tail(state: JobState) -> tuple[list[tuple[LogRow, int]], int, int]:
    """Empty a state's tail and pending counts; return them."""
    tail = list(state.tail)
    state.tail.clear()
    counts = state.elided_lines, state.elided_bytes
    state.elided_lines = state.elided_bytes = 0
    return (tail, *counts)
