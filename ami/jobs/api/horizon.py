"""The log horizon H: every JobLog line with `txid < H` has committed or never will.

Writers (migration 0003, `jobs_joblog_txid()`): on its first line a transaction marks itself
a log writer (its `application_name` ends in `-joblog`) and only then takes a transaction id,
which every line it writes carries as `txid`. A transaction that already had an id gets the
`xmax` of a fresh snapshot instead.

Reader (`HORIZON_SQL`, one autocommit statement): take a snapshot S, then read
pg_stat_activity. H is the smallest of `xmax(S)` and the ids of S's running transactions
that are marked log writers.
- A writer whose txid is below `xmax(S)` and that is still open when pg_stat_activity is read
  was marked before it took that txid, so it shows up there and holds H at or below it.
- One that is not there has ended: its lines are visible to the reader's NEXT statement
  (READ COMMITTED takes a snapshot per statement), so the row query runs separately, after.
- A writer that takes its txid later gets one >= `xmax(S)` >= H.
- Transactions without the mark (an operator's open UPDATE, pg_dump) never hold H back.
So a cursor that only moves over lines with `txid < H` never passes a line still to commit.

Assumptions: the reader's role can see other sessions' `backend_xid` in pg_stat_activity
(the same role as the writers, or `pg_read_all_stats`), and writers run READ COMMITTED.
"""

from __future__ import annotations

import threading
import time

from django.db import connections

HORIZON_SQL = """
SELECT least(
  pg_snapshot_xmax(s.snap)::text::bigint,
  (SELECT min(x::text::bigint) FROM pg_snapshot_xip(s.snap) AS x
    WHERE x::text::bigint % 4294967296 IN (
      SELECT backend_xid::text::bigint FROM pg_stat_activity
      WHERE application_name LIKE '%-joblog' AND backend_xid IS NOT NULL
        AND pid <> pg_backend_pid())))
FROM (SELECT pg_current_snapshot() AS snap) AS s
"""
# Inside a transaction, pg_stat_activity is read once and then cached: a cached read could be
# older than the snapshot S, which the argument above forbids.
_FRESH_ACTIVITY_SQL = "SELECT pg_stat_clear_snapshot()"
# HORIZON_SQL inside a statement that has parameters: its `%` signs doubled.
HORIZON_SQL_PARAMS = HORIZON_SQL.replace("%", "%%")


def log_horizon(using: str = "default") -> int:
    """Return H: lines with `txid < H` may be served; run the row query after this returns."""
    connection = connections[using]
    with connection.cursor() as cursor:
        if connection.in_atomic_block:
            cursor.execute(_FRESH_ACTIVITY_SQL)
        cursor.execute(HORIZON_SQL)
        return cursor.fetchone()[0]


def horizon_with(query: str, params: tuple | list, using: str = "default") -> tuple | None:
    """The first row of `query`, one statement whose select list computes H, or None.

    `query` holds `HORIZON_SQL` as a scalar subquery (`SELECT (<HORIZON_SQL, % doubled>),
    ...`) beside other columns, so that a request learns H and what else it needs in one
    round trip. H stays what `log_horizon` returns: one statement, one snapshot; run the
    row query after this returns.
    """
    connection = connections[using]
    with connection.cursor() as cursor:
        if connection.in_atomic_block:
            cursor.execute(_FRESH_ACTIVITY_SQL)
        cursor.execute(query, params)
        return cursor.fetchone()


class SharedHorizon:
    """One H per process per `max_age`, for pollers: many open streams cost one query.

    An older H stays safe (its lines committed before it was returned); it is only less fresh.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._found: dict[str, tuple[float, int]] = {}

    def get(self, max_age: float, using: str = "default") -> int:
        """Return an H found at most `max_age` seconds ago, or a fresh one."""
        with self._lock:
            found_at, horizon = self._found.get(using, (0.0, 0))
        if time.monotonic() - found_at < max_age:
            return horizon
        started = time.monotonic()
        horizon = log_horizon(using)
        with self._lock:
            if self._found.get(using, (0.0, 0))[1] <= horizon:
                self._found[using] = (started, horizon)
        return horizon


shared_horizon = SharedHorizon()
