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
from django.db import connection
from psycopg import pq

CANCEL_TIMEOUT = 2.0  # seconds to wait for the server to confirm a cancel


@contextlib.contextmanager
def abandon_connection_on_interrupt() -> Iterator[None]:
    """Use inside `transaction.atomic()`: on a non-Exception interrupt, drop the connection.

    Ordinary exceptions pass through untouched (the atomic block rolls back as usual);
    the interrupt itself is always re-raised.
    """
    try:
        yield
    except Exception:
        raise
    except BaseException:
        abandon_connection()
        raise


def abandon_connection() -> None:
    """Cancel any running query on Django's default connection and close it."""
    raw = connection.connection
    if raw is not None and raw.info.transaction_status == pq.TransactionStatus.ACTIVE:
        with contextlib.suppress(psycopg.Error):
            raw.cancel_safe(timeout=CANCEL_TIMEOUT)
    # Inside an atomic block Django records this and skips the rollback on exit; the
    # server rolls the transaction back when the connection ends.
    connection.close()
