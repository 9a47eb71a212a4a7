"""One statement per line as a named prepared statement, sent with libpq's own calls.

psycopg's `Cursor.execute(sql, values, prepare=True)` runs some 30 Python calls around the
two libpq calls it makes (query conversion, its prepared-statement cache, a dumper per
value, the result set). The `sync` writer runs it for every line, right after a context
switch (the previous line's round trip) has left the CPU caches cold: it was a fifth of the
writer's CPU per line. Here the statement is prepared once per connection, and each line is
sent with `send_query_prepared` (values as text, encoded by the caller) and waited for with
the connection's own `wait`, as psycopg does: the GIL is released while the server works,
and an exception raised by a signal handler (a Celery soft time limit) leaves the connection
as psycopg would leave it (not idle: `connection.is_broken`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import psycopg
from psycopg import errors, generators, pq

ENCODING = "utf-8"  # Django opens every PostgreSQL connection with client_encoding UTF8
NUL_REFUSED = "PostgreSQL text fields cannot contain NUL (0x00) bytes"  # psycopg's words

_thread = threading.local()  # name -> the connection this thread prepared it on


def check_text(text: str) -> str:
    """`text`, refused as psycopg refuses it: a NUL would end a text-format value early."""
    if "\x00" in text:
        raise psycopg.DataError(NUL_REFUSED)
    return text


def failure(raw: psycopg.Connection, result: pq.abc.PGresult) -> psycopg.Error:
    """The error psycopg would raise for a failed result: an OperationalError if the
    connection is gone (the log writers then reconnect and retry), else the error of the
    result's SQLSTATE (e.g. CheckViolation for a row no partition takes)."""
    if raw.pgconn.status == pq.ConnStatus.BAD:
        return psycopg.OperationalError(result.error_message.decode(ENCODING, "replace"))
    return errors.error_from_result(result, encoding=ENCODING)


class PreparedStatement:
    """A statement taking text-format values, prepared on each connection at its first use."""

    def __init__(self, name: str, sql: str) -> None:
        self.name = name.encode()
        self.sql = sql.encode()

    def execute(self, raw: psycopg.Connection, values: Sequence[bytes]) -> None:
        """Run the statement with `values`; raise the psycopg error of a failed one."""
        prepared = getattr(_thread, "prepared", None)
        if prepared is None:
            prepared = _thread.prepared = {}
        if prepared.get(self.name) is not raw:
            self._prepare(raw, prepared)
        result = self._run(raw, values)
        if result.status == pq.ExecStatus.COMMAND_OK:
            return
        error = failure(raw, result)
        if not isinstance(error, errors.InvalidSqlStatementName):
            raise error
        # Deallocated meanwhile (DISCARD ALL): nothing ran, so prepare it again and run it.
        self._prepare(raw, prepared)
        result = self._run(raw, values)
        if result.status != pq.ExecStatus.COMMAND_OK:
            raise failure(raw, result)

    def _prepare(self, raw: psycopg.Connection, prepared: dict[bytes, object]) -> None:
        prepared.pop(self.name, None)
        pgconn = raw.pgconn
        pgconn.send_prepare(self.name, self.sql)
        result = raw.wait(generators.execute(pgconn))[-1]
        if result.status != pq.ExecStatus.COMMAND_OK:
            error = failure(raw, result)
            if not isinstance(error, errors.DuplicatePreparedStatement):
                raise error
            # Prepared on this connection by an earlier attempt whose reply was lost.
        prepared[self.name] = raw

    def _run(self, raw: psycopg.Connection, values: Sequence[bytes]) -> pq.abc.PGresult:
        pgconn = raw.pgconn
        pgconn.send_query_prepared(self.name, values)
        return raw.wait(generators.execute(pgconn))[-1]
