"""Write a batch that the database refused, one row at a time: only the bad rows are dropped.

Every dropped row is counted (`FailureReporter.refused`) and, per job, stands in the log as
a marker line, like the queue's overflow marker, so a reader sees that lines are missing.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

from ami.jobs.logging.errors import LOST_ERRORS, REFUSED_ERRORS, FailureReporter
from ami.jobs.logging.rows import LogRow

Write = Callable[[list[LogRow]], None]


def refused_marker(job_id: int, dropped: int) -> LogRow:
    return LogRow(
        job_id=job_id,
        level=logging.WARNING,
        message=f"{dropped} log lines dropped: the database refused their content",
        context={"dropped": dropped},
    )


def write_one_by_one(write: Write, rows: list[LogRow], reporter: FailureReporter) -> None:
    """Write each row on its own (`write` must skip rows already stored); count failures.

    A lost connection ends the attempt: the rest are counted as lost, not tried one by one.
    """
    refused: Counter[int] = Counter()
    for index, row in enumerate(rows):
        try:
            write([row])
        except LOST_ERRORS as exc:
            reporter.failed(exc, len(rows) - index)
            break
        except REFUSED_ERRORS as exc:
            refused[row.job_id] += 1
            reporter.refused(exc)
    write_markers(write, [refused_marker(job, n) for job, n in refused.items()], reporter)


def write_markers(write: Write, markers: list[LogRow], reporter: FailureReporter) -> None:
    """Write marker lines; a marker that fails is counted as lost, never retried."""
    for marker in markers:
        try:
            write([marker])
        except (*LOST_ERRORS, *REFUSED_ERRORS) as exc:
            reporter.failed(exc, 1)
