"""`legacy_json`: the upstream JSON column `jobs_job.logs`, written in one atomic UPDATE.

The column's format (entries, cap) is `ami.jobs.logging.legacy`'s. The statement prepends
the new lines to the array as stored at that moment, so concurrent writers never overwrite
each other (never refresh-then-save). It still updates the job row, so it waits on anyone
holding that row's lock: only for the dual-write rollout (where it runs on a background
thread) and for side-by-side benchmarks.
"""

from __future__ import annotations

import json
import logging

from ami.jobs.logging.backends.background import BackgroundWriter
from ami.jobs.logging.backends.base import JobLogBackend
from ami.jobs.logging.backends.buffered import close_thread_connection
from ami.jobs.logging.connection import call_with_reconnect, discard, log_connection
from ami.jobs.logging.errors import FailureReporter, LogWriteError
from ami.jobs.logging.legacy import MAX_LINES, format_entry
from ami.jobs.logging.rows import LogRow
from ami.jobs.models import Job

_PREPEND = """(
    SELECT COALESCE(jsonb_agg(entry ORDER BY position), '[]'::jsonb) FROM (
        SELECT entry, position
        FROM jsonb_array_elements(%s::jsonb || COALESCE({column}->'{key}', '[]'::jsonb))
            WITH ORDINALITY AS lines(entry, position)
        ORDER BY position LIMIT %s
    ) AS newest
)"""
UPDATE_SQL = (
    f"UPDATE {Job._meta.db_table} SET logs = jsonb_build_object("
    f"'stdout', {_PREPEND.format(column='logs', key='stdout')}, "
    f"'stderr', {_PREPEND.format(column='logs', key='stderr')}) "
    "WHERE id = %s"
)


def update_legacy_column(rows: list[LogRow]) -> None:
    """Prepend rows to their jobs' JSON columns: one UPDATE statement per job."""
    by_job: dict[int, list[LogRow]] = {}
    for row in rows:
        by_job.setdefault(row.job_id, []).append(row)
    conn = log_connection()
    for job_id, job_rows in by_job.items():
        newest_first = list(reversed(job_rows))
        stdout = [format_entry(row.created_at, row.level, row.message) for row in newest_first]
        stderr = [row.message for row in newest_first if row.level >= logging.ERROR]
        params = [json.dumps(stdout), MAX_LINES, json.dumps(stderr), MAX_LINES, job_id]

        def write(params: list = params) -> int:
            with conn.cursor() as cursor:
                cursor.execute(UPDATE_SQL, params)
                return cursor.rowcount

        if call_with_reconnect(conn, write) == 0:
            raise LogWriteError(f"job {job_id} does not exist")


class LegacyJsonBackend(JobLogBackend):
    name = "legacy_json"
    dual_writable = False  # it is the legacy column

    def write_rows(self, rows: list[LogRow]) -> None:
        update_legacy_column(rows)

    def release_thread_resources(self) -> None:
        discard(log_connection())


def dual_write_target(*, batch_size: int, interval: float, max_lines: int) -> BackgroundWriter:
    """The dual-write secondary: legacy UPDATEs on a background thread of their own."""
    return BackgroundWriter(
        update_legacy_column,
        FailureReporter("job log (legacy JSON dual-write)"),
        name="ami-joblog-legacy",
        batch_size=batch_size,
        interval=interval,
        max_lines=max_lines,
        on_thread_exit=close_thread_connection,
    )
