"""`sync`: one autocommit INSERT per line on the dedicated `logs` connection.

When `emit` returns, the line is committed (or its failure was reported). A connection
killed between two lines is replaced and the line retried once.
"""

from __future__ import annotations

import json

from ami.jobs.logging.backends.base import JobLogBackend
from ami.jobs.logging.connection import call_with_reconnect, discard, log_connection
from ami.jobs.logging.rows import LogRow
from ami.jobs.models import JobLog

INSERT_SQL = (
    f"INSERT INTO {JobLog._meta.db_table} (job_id, level, message, context) "
    "VALUES (%s, %s, %s, %s::jsonb)"
)


def insert_rows(rows: list[LogRow]) -> None:
    """INSERT rows on this thread's log connection, each committed on its own."""
    conn = log_connection()

    def write() -> None:
        with conn.cursor() as cursor:
            for row in rows:
                cursor.execute(
                    INSERT_SQL, [row.job_id, row.level, row.message, json.dumps(row.context)]
                )

    call_with_reconnect(conn, write)


class SyncBackend(JobLogBackend):
    name = "sync"

    def write_rows(self, rows: list[LogRow]) -> None:
        insert_rows(rows)

    def release_thread_resources(self) -> None:
        discard(log_connection())
