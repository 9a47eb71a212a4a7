"""Holding rows locked from a connection of the test's own, and seeing who waits on it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql


@contextmanager
def rows_locked(
    database_url: str, table: str, column: str, value: object
) -> Iterator[psycopg.Connection]:
    """Hold the rows of `table` whose `column` is `value` `FOR UPDATE` until the block ends."""
    with psycopg.connect(database_url, autocommit=True) as blocker:
        blocker.execute("BEGIN")
        query = sql.SQL("SELECT 1 FROM {} WHERE {} = %s FOR UPDATE").format(
            sql.Identifier(table), sql.Identifier(column)
        )
        blocker.execute(query, [value])
        yield blocker
        blocker.execute("ROLLBACK")


def blocked_pids(blocker: psycopg.Connection) -> list[int]:
    """Backends waiting for a lock that `blocker` holds."""
    # Inside a transaction pg_stat_activity is read once and kept: drop that copy first.
    blocker.execute("SELECT pg_stat_clear_snapshot()")
    rows = blocker.execute(
        "SELECT pid FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
        [blocker.info.backend_pid],
    ).fetchall()
    return [row[0] for row in rows]
