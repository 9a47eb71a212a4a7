"""Where a job's log budget is kept: the `jobs_joblogbudget` table, or this process's memory.

`TableLedger` is shared by every process writing the job: each takes the budget in chunks
(`ami.jobs.locking.reserve_log_budget`, one guarded statement per chunk, never per line) and
adds what it elided. It talks to the database on a connection of its own, opened on first
use in each process with the `logs` alias's settings (autocommit, `lock_timeout`,
`connect_timeout`), and used under a lock: reservations are rare (one per chunk), so one
connection per process suffices, and unlike Django's thread-local connections it may be
used from any thread, also a timer thread or one that runs an event loop, and leaves no
connection behind in short-lived threads.

`LocalLedger` keeps the same counts in this process only (the `memory` backend, unit tests).
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg
from django.db import connections

from ami.jobs.logging.connection import LOG_DB_ALIAS
from ami.jobs.logging.errors import CONNECTION_ERRORS
from ami.jobs.logging.process import current_pid

# Connections inherited from a parent process: never closed or collected in the child, where
# closing would end the parent's session (libpq says goodbye on the shared socket).
_inherited: list[psycopg.Connection] = []
# Keywords of Django's connection parameters that are not libpq's or psycopg's.
_DJANGO_ONLY = ("server_side_binding", "assume_role")


class Ledger:
    """The budget's shared counts: reserve a grant, add elided lines."""

    def reserve(
        self, job_id: int, lines: int, size: int, *, line_limit: int, byte_limit: int
    ) -> tuple[int, int]:
        """Take up to `lines` lines and `size` bytes; return (lines, bytes) granted."""
        raise NotImplementedError

    def add_elided(self, job_id: int, lines: int, size: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the ledger holds (process shutdown, settings changed)."""


class LocalLedger(Ledger):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # job id -> [lines reserved, bytes reserved, lines elided, bytes elided]
        self.counts: dict[int, list[int]] = {}

    def reserve(
        self, job_id: int, lines: int, size: int, *, line_limit: int, byte_limit: int
    ) -> tuple[int, int]:
        with self._lock:
            counts = self.counts.setdefault(job_id, [0, 0, 0, 0])
            if counts[0] >= line_limit or counts[1] >= byte_limit:
                return 0, 0
            granted = min(lines, line_limit - counts[0]), min(size, byte_limit - counts[1])
            counts[0] += granted[0]
            counts[1] += granted[1]
            return granted

    def add_elided(self, job_id: int, lines: int, size: int) -> None:
        with self._lock:
            counts = self.counts.setdefault(job_id, [0, 0, 0, 0])
            counts[2] += lines
            counts[3] += size


class TableLedger(Ledger):
    """`jobs_joblogbudget`, through this process's own autocommit connection.

    A connection found dead by a statement (idle for long between two chunks, killed) is
    replaced and the statement run once more: a reservation whose reply was lost after its
    commit is then taken twice, which only leaves part of the budget unused; an elided
    count is then added twice (the one way the count can be high). Any other database
    error propagates to the caller (`JobBudget`, which fails closed) after the connection
    is dropped; the next call opens a fresh one.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conn: psycopg.Connection | None = None
        self._pid = current_pid()

    def reserve(
        self, job_id: int, lines: int, size: int, *, line_limit: int, byte_limit: int
    ) -> tuple[int, int]:
        # Imported here: the backends load while the app registry is still loading models.
        from ami.jobs import locking

        limits = {"line_limit": line_limit, "byte_limit": byte_limit}
        return self._run(lambda cur: locking.reserve_log_budget(cur, job_id, lines, size, **limits))

    def add_elided(self, job_id: int, lines: int, size: int) -> None:
        from ami.jobs import locking

        self._run(lambda cur: locking.add_elided_lines(cur, job_id, lines, size))

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None and self._pid == current_pid():
                conn.close()
            elif conn is not None:
                _inherited.append(conn)

    def _run(self, statement: Any) -> Any:
        with self._lock:
            was_open = self._conn is not None and self._pid == current_pid()
            try:
                return self._execute(statement)
            except CONNECTION_ERRORS:
                if not was_open:
                    raise  # a connection that could not be opened: a retry would wait again
            return self._execute(statement)

    def _execute(self, statement: Any) -> Any:
        # Called with self._lock held.
        conn = self._connection()
        try:
            with conn.cursor() as cursor:
                return statement(cursor)
        except BaseException:
            # Broken, or interrupted mid-statement (a soft time limit): start afresh.
            self._conn = None
            conn.close()
            raise

    def _connection(self) -> psycopg.Connection:
        # Called with self._lock held.
        if self._pid != current_pid():
            if self._conn is not None:
                _inherited.append(self._conn)
            self._conn, self._pid = None, current_pid()
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(**connection_params(), autocommit=True)
        return self._conn


def connection_params() -> dict[str, Any]:
    """The `logs` alias's connection parameters (database, credentials, `options` with its
    `lock_timeout`, `connect_timeout`) as psycopg takes them, under a name of its own."""
    params = connections[LOG_DB_ALIAS].get_connection_params()
    for name in _DJANGO_ONLY:
        params.pop(name, None)
    # Its own name in pg_stat_activity: "ami-joblog-budget" next to the writers' "ami-joblog".
    params["application_name"] = f"{params.get('application_name') or 'ami-joblog'}-budget"
    return params
