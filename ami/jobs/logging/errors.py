"""Which write errors the job log absorbs, and how it reports them: once per burst, on stderr.

Only database and connection errors are absorbed. Anything else (celery's
`SoftTimeLimitExceeded` is a plain `Exception` subclass in billiard) propagates to the caller.
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

BURST_GAP = 10.0  # seconds without a failure that end a burst


class FailureReporter:
    """Count failed lines; print one stderr line when a burst of failures starts.

    A burst ends at the next successful write or after `BURST_GAP` seconds without failures.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self.lost_lines = 0
        self.failed_writes = 0
        self._in_burst = False
        self._last_failure = 0.0
        self._lock = threading.Lock()

    def failed(self, exc: BaseException, lines: int) -> None:
        now = time.monotonic()
        with self._lock:
            self.lost_lines += lines
            self.failed_writes += 1
            starts_burst = not self._in_burst or now - self._last_failure > BURST_GAP
            self._in_burst = True
            self._last_failure = now
            total = self.lost_lines
        if starts_burst:
            detail = " ".join(str(exc).split())[:300]
            # Shaped like a log record (timestamp, level, name) so log tooling reads it as one.
            stamp = datetime.now().isoformat(sep=" ", timespec="milliseconds").replace(".", ",")
            sys.stderr.write(
                f"{stamp} ERROR ami.jobs.logging: {self.what} write failed "
                f"({type(exc).__name__}: {detail}); "
                f"{total} line(s) lost in this process so far, further failures in this "
                f"burst are counted silently\n"
            )
            sys.stderr.flush()

    def succeeded(self) -> None:
        if self._in_burst:
            with self._lock:
                self._in_burst = False
