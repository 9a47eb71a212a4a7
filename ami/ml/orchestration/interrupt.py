"""Leaving a database connection clean when a task is interrupted mid-query.

Celery's soft time limit raises `SoftTimeLimitExceeded` from a signal handler, wherever the
task is. If that is inside a query, psycopg leaves the connection with the query still
running (it cancels only on KeyboardInterrupt); the transaction's rollback would then wait
behind that query, e.g. for a row lock, until the hard time limit kills the process. Here
the running query is cancelled and the connection closed, so the server rolls back at once
and the next task gets a fresh connection.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg
from celery.exceptions import SoftTimeLimitExceeded
from django.db import connection
from psycopg import pq

CANCEL_TIMEOUT = 2.0  # seconds to wait for the server to confirm a cancel


@contextlib.contextmanager
def abandon_connection_on_interrupt() -> Iterator[None]:
    """Use inside `transaction.atomic()`: on an interrupt, drop the connection.

    An interrupt is Celery's soft time limit or anything that is not an `Exception`
    (KeyboardInterrupt, SystemExit). `SoftTimeLimitExceeded` *is* an `Exception`, so it is
    named first. Ordinary exceptions pass through untouched (the atomic block rolls back as
    usual); the interrupt itself is always re-raised.
    """
    try:
        yield
    except BaseException as exc:
        if is_interrupt(exc):
            abandon_connection()
        raise


def is_interrupt(exc: BaseException) -> bool:
    """True for what stops a task from outside: a soft time limit, a signal, an exit."""
    return isinstance(exc, SoftTimeLimitExceeded) or not isinstance(exc, Exception)


def abandon_connection() -> None:
    """Cancel any running query on Django's default connection and close it."""
    raw = connection.connection
    if raw is not None and raw.info.transaction_status == pq.TransactionStatus.ACTIVE:
        with contextlib.suppress(psycopg.Error):
            raw.cancel_safe(timeout=CANCEL_TIMEOUT)
    # Inside an atomic block Django records this and skips the rollback on exit; the
    # server rolls the transaction back when the connection ends.
    connection.close()
