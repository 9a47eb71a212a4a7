"""Collapse storms of identical lines: the first line, then "last message repeated N times".

Like syslog: a line identical (same level and message) to the previous line of the same job
is counted instead of written. The count is written as its own row when a different line
arrives, when the count has waited `window` seconds, or on flush. Nothing is dropped
silently: every suppressed line is in a count.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from ami.jobs.logging.rows import LogRow

MAX_TRACKED_JOBS = 1024  # jobs whose last line is remembered; the oldest is forgotten first


@dataclass
class _Last:
    row: LogRow
    repeats: int = 0
    first_repeat_at: float = 0.0  # time.monotonic() of the first uncounted repeat


def repeat_row(row: LogRow, repeats: int) -> LogRow:
    """The row that stands for `repeats` suppressed copies of `row`."""
    return LogRow(
        job_id=row.job_id,
        level=row.level,
        message=f"last message repeated {repeats} times",
        context={**row.context, "repeated": repeats},
    )


class RepeatCollapser:
    """Not thread-safe by itself: the backend calls it under its own lock."""

    def __init__(self, window: float) -> None:
        self.window = window  # seconds a repeat count may wait before it is written
        self._last: OrderedDict[int, _Last] = OrderedDict()

    def feed(self, row: LogRow, now: float | None = None) -> tuple[list[LogRow], bool]:
        """Return the rows to write for `row`, and whether a repeat count is now pending."""
        now = time.monotonic() if now is None else now
        last = self._last.get(row.job_id)
        if last is not None and (last.row.level, last.row.message) == (row.level, row.message):
            return self._count(last, now), last.repeats > 0
        out = [repeat_row(last.row, last.repeats)] if last is not None and last.repeats else []
        out.append(row)
        self._remember(row)
        return out + self._evict(), False

    def due(self, now: float | None = None, *, everything: bool = False) -> list[LogRow]:
        """Take the repeat counts that waited `window` seconds (or all of them)."""
        now = time.monotonic() if now is None else now
        out = []
        for last in self._last.values():
            if last.repeats and (everything or now - last.first_repeat_at >= self.window):
                out.append(repeat_row(last.row, last.repeats))
                last.repeats = 0
        return out

    def pending(self) -> bool:
        return any(last.repeats for last in self._last.values())

    def next_due_in(self, now: float | None = None) -> float | None:
        """Seconds until the oldest pending count is due; None if nothing is pending."""
        now = time.monotonic() if now is None else now
        starts = [last.first_repeat_at for last in self._last.values() if last.repeats]
        return max(0.0, min(starts) + self.window - now) if starts else None

    def _count(self, last: _Last, now: float) -> list[LogRow]:
        if last.repeats == 0:
            last.first_repeat_at = now
        last.repeats += 1
        if now - last.first_repeat_at < self.window:
            return []
        out = [repeat_row(last.row, last.repeats)]
        last.repeats = 0
        return out

    def _remember(self, row: LogRow) -> None:
        self._last[row.job_id] = _Last(row)
        self._last.move_to_end(row.job_id)

    def _evict(self) -> list[LogRow]:
        out = []
        while len(self._last) > MAX_TRACKED_JOBS:
            _, last = self._last.popitem(last=False)
            if last.repeats:
                out.append(repeat_row(last.row, last.repeats))
        return out
