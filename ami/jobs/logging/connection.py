"""The dedicated log connection: reuse it while healthy, replace it once when it broke.

`connections["logs"]` is thread-local (one connection per thread) and autocommit, so a line
is committed by its own statement, never as part of the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from psycopg.pq import TransactionStatus

from ami.jobs.logging.errors import CONNECTION_ERRORS, WRITE_ERRORS

LOG_DB_ALIAS = "logs"
T = TypeVar("T")


def log_connection() -> BaseDatabaseWrapper:
    """This thread's connection on the `logs` alias (autocommit, own lock_timeout)."""
    return connections[LOG_DB_ALIAS]


def discard(conn: BaseDatabaseWrapper) -> None:
    """Close a connection that may be broken; the next use opens a fresh one."""
    try:
        conn.close()
    except WRITE_ERRORS:
        conn.connection = None


def is_broken(conn: BaseDatabaseWrapper) -> bool:
    """True if the autocommit connection cannot take a new statement as it is."""
    raw = conn.connection
    if raw is None:
        return False
    # Asked of libpq directly (this runs before every line): `raw.info` would build a
    # ConnectionInfo each time. A closed or broken connection reports UNKNOWN, not IDLE;
    # anything but IDLE on an open one means a statement was interrupted mid-flight (e.g.
    # by a soft time limit): reusing it gives "another command is already in progress".
    return raw.pgconn.transaction_status != TransactionStatus.IDLE


def call_with_reconnect(
    conn: BaseDatabaseWrapper, write: Callable[[], T], retry: Callable[[], T] | None = None
) -> T:
    """Run `write`; if the connection was killed under it, reconnect and run `retry` once.

    `retry` (default: `write`) must be safe when the first attempt committed and only the
    reply was lost: the log writers skip rows whose `key` is already stored.

    An error on a healthy connection (lock timeout, job deleted) or while connecting is raised
    at once: a retry would only wait again. Any other exception (e.g. `SoftTimeLimitExceeded`)
    propagates after the possibly half-used connection is dropped.
    """
    if is_broken(conn):
        discard(conn)
    try:
        return write()
    except CONNECTION_ERRORS:
        # Retried only if the connection was open and broke under the write. One that could
        # not be opened (no connection object) is not: the retry would wait another
        # connect_timeout for the same answer.
        if conn.connection is None or not is_broken(conn):
            raise
        discard(conn)
    except WRITE_ERRORS:
        raise
    except BaseException:
        discard(conn)
        raise
    return (retry or write)()
