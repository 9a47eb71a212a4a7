"""Which write errors the job log absorbs, and how it reports them: once per burst, on stderr.

Two kinds of failure, counted apart: a write *lost* its lines (connection down, job gone:
`LOST_ERRORS`), or the database (or its client library) *refused* one row's content
(`REFUSED_ERRORS`): that row alone is dropped and counted, never its batch. Anything else
(celery's `SoftTimeLimitExceeded` is a plain `Exception` subclass in billiard) propagates
to the caller.
The report goes straight to stderr, never through `logging`, so a failing write can never
re-enter the job logger.
"""

from __future__ import annotations

import sys
import threading
import time
from datetime import datetime

import django.db
import psycopg


class LogWriteError(Exception):
    """A write that reached the database but could not store its lines (e.g. job deleted)."""


# What a log write may fail with and the caller must not see.
WRITE_ERRORS: tuple[type[BaseException], ...] = (
    django.db.Error,
    psycopg.Error,
    OSError,
    LogWriteError,
)
# The connection itself is gone: drop it and try again on a fresh one.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    django.db.OperationalError,
    django.db.InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)

# The write as a whole failed; its rows were not stored (or may not have been).
LOST_ERRORS: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, OSError, LogWriteError)
# One of the rows may be at fault (a value out of range, a byte sequence the encoder or the
# server rejects): write the rows one by one and drop only those refused.
REFUSED_ERRORS: tuple[type[BaseException], ...] = (
    django.db.Error,
    psycopg.Error,
    ValueError,
    TypeError,
)

BURST_GAP = 10.0  # seconds without a failure that end a burst


class FailureReporter:
    """Count failed lines; print one stderr line when a burst of failures starts.

    A burst ends at the next successful write or after `BURST_GAP` seconds without failures.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self.lost_lines = 0
        self.dropped_lines = 0  # rows refused one by one (bad content), each counted
        self.failed_writes = 0
        self._in_burst = False
        self._last_failure = 0.0
        self._lock = threading.Lock()

    def failed(self, exc: BaseException, lines: int) -> None:
        """Count `lines` lost by a write that failed as a whole."""
        self._count(exc, lost=lines, dropped=0)

    def refused(self, exc: BaseException, lines: int = 1) -> None:
        """Count `lines` dropped because their content could not be stored."""
        self._count(exc, lost=0, dropped=lines)

    def _count(self, exc: BaseException, *, lost: int, dropped: int) -> None:
        now = time.monotonic()
        with self._lock:
            self.lost_lines += lost
            self.dropped_lines += dropped
            self.failed_writes += 1
            starts_burst = not self._in_burst or now - self._last_failure > BURST_GAP
            self._in_burst = True
            self._last_failure = now
            total, refused = self.lost_lines, self.dropped_lines
        if starts_burst:
            detail = " ".join(str(exc).split())[:300]
            # Shaped like a log record (timestamp, level, name) so log tooling reads it as one.
            stamp = datetime.now().isoformat(sep=" ", timespec="milliseconds").replace(".", ",")
            sys.stderr.write(
                f"{stamp} ERROR ami.jobs.logging: {self.what} write failed "
                f"({type(exc).__name__}: {detail}); "
                f"{total} line(s) lost and {refused} dropped (refused) in this process so "
                f"far, further failures in this burst are counted silently\n"
            )
            sys.stderr.flush()

    def succeeded(self) -> None:
        if self._in_burst:
            with self._lock:
                self._in_burst = False
