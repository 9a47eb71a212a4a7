"""`sync`: one autocommit INSERT per line on the dedicated `logs` connection.

When `emit` returns, the line is committed (or its failure was counted). A connection killed
between two lines is replaced and the write retried once; every INSERT skips a row whose
`key` is already stored, so a retry after a lost commit reply stores nothing twice.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
from django.db.backends.base.base import BaseDatabaseWrapper

from ami.jobs.logging.backends.base import JobLogBackend
from ami.jobs.logging.connection import call_with_reconnect, discard, log_connection
from ami.jobs.logging.rows import LogRow
from ami.jobs.models import JobLog

TABLE = JobLog._meta.db_table
COLUMNS = "job_id, level, message, context, created_at, key"
INSERT_SQL = (
    f"INSERT INTO {TABLE} ({COLUMNS}) VALUES (%s, %s, %s, %s::jsonb, %s, %s) "
    "ON CONFLICT (key) DO NOTHING"
)
# Many rows in one statement (one commit), for a retry of a batch that may have committed.
INSERT_MANY_SQL = (
    f"INSERT INTO {TABLE} ({COLUMNS}) SELECT * FROM unnest("
    "%s::bigint[], %s::smallint[], %s::text[], %s::jsonb[], %s::timestamptz[], %s::uuid[]"
    ") ON CONFLICT (key) DO NOTHING"
)


def row_params(row: LogRow) -> tuple[Any, ...]:
    """One row's values in `COLUMNS` order."""
    context = json.dumps(row.context)
    return (row.job_id, row.level, row.message, context, row.created_at, row.key_text)


def insert_rows(rows: list[LogRow]) -> None:
    """INSERT rows on this thread's log connection, each committed on its own."""
    conn = log_connection()

    def write() -> None:
        conn.ensure_connection()
        # A server-side-binding cursor with a prepared statement: half the client CPU of
        # Django's client-side-binding cursor, and no parse/plan per line on the server.
        with psycopg.Cursor(conn.connection) as cursor:
            for row in rows:
                cursor.execute(INSERT_SQL, row_params(row), prepare=True)

    call_with_reconnect(conn, write)


def insert_many(conn: BaseDatabaseWrapper, rows: list[LogRow]) -> None:
    """INSERT rows in one statement (one commit), skipping those already stored (same `key`)."""
    conn.ensure_connection()
    columns = list(zip(*(row_params(row) for row in rows), strict=True))
    with psycopg.Cursor(conn.connection) as cursor:
        cursor.execute(INSERT_MANY_SQL, [list(values) for values in columns])


def insert_rows_once(rows: list[LogRow]) -> None:
    """`insert_many` on this thread's log connection, reconnecting once if it was killed."""
    conn = log_connection()
    call_with_reconnect(conn, lambda: insert_many(conn, rows))


class SyncBackend(JobLogBackend):
    name = "sync"

    def write_rows(self, rows: list[LogRow]) -> None:
        insert_rows(rows)

    def release_thread_resources(self) -> None:
        discard(log_connection())
