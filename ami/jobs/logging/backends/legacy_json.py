"""`legacy_json`: the upstream JSON column `jobs_job.logs`, written in one atomic UPDATE.

Layout kept for old readers: `{"stdout": [...], "stderr": [...]}`, newest first, each capped
at `JOB_LOG_LEGACY_MAX_LINES`; a stdout entry is "[YYYY-mm-dd HH:MM:SS] LEVEL message",
a stderr entry (ERROR and above) is the bare message. The statement prepends the new lines to
the array as stored at that moment, so concurrent writers never overwrite each other
(never refresh-then-save). It still updates the job row, so it waits on anyone holding that
row's lock: only for the dual-write rollout (where it runs on a background thread) and for
side-by-side benchmarks.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC
from functools import partial

from ami.jobs.logging.backends.background import BackgroundWriter
from ami.jobs.logging.backends.base import JobLogBackend
from ami.jobs.logging.backends.buffered import close_thread_connection
from ami.jobs.logging.connection import call_with_reconnect, discard, log_connection
from ami.jobs.logging.errors import FailureReporter, LogWriteError
from ami.jobs.logging.rows import LogRow
from ami.jobs.logging.validation import require
from ami.jobs.models import Job

DEFAULT_MAX_LINES = 1000
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"

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


def stdout_entry(row: LogRow) -> str:
    """ "[YYYY-mm-dd HH:MM:SS] LEVEL message", stamped with the line's emit time in UTC."""
    stamp = row.created_at.astimezone(UTC).strftime(TIMESTAMP_FORMAT)
    return f"[{stamp}] {row.level_name} {row.message}"


def update_legacy_column(rows: list[LogRow], max_lines: int = DEFAULT_MAX_LINES) -> None:
    """Prepend rows to their jobs' JSON columns: one UPDATE statement per job."""
    by_job: dict[int, list[LogRow]] = {}
    for row in rows:
        by_job.setdefault(row.job_id, []).append(row)
    conn = log_connection()
    for job_id, job_rows in by_job.items():
        newest_first = list(reversed(job_rows))
        stdout = [stdout_entry(row) for row in newest_first]
        stderr = [row.message for row in newest_first if row.level >= logging.ERROR]
        params = [json.dumps(stdout), max_lines, json.dumps(stderr), max_lines, job_id]

        def write(params: list = params) -> int:
            with conn.cursor() as cursor:
                cursor.execute(UPDATE_SQL, params)
                return cursor.rowcount

        if call_with_reconnect(conn, write) == 0:
            raise LogWriteError(f"job {job_id} does not exist")


class LegacyJsonBackend(JobLogBackend):
    name = "legacy_json"
    dual_writable = False  # it is the legacy column

    @classmethod
    def options(cls, settings_options: dict) -> dict:
        max_lines = settings_options.get("legacy_max_lines", DEFAULT_MAX_LINES)
        return super().options(settings_options) | {"max_lines": max_lines}

    def __init__(self, *, max_lines: int = DEFAULT_MAX_LINES, **kwargs) -> None:
        require("max_lines", max_lines, "JOB_LOG_LEGACY_MAX_LINES")
        super().__init__(**kwargs)
        self.max_lines = max_lines

    def write_rows(self, rows: list[LogRow]) -> None:
        update_legacy_column(rows, self.max_lines)

    def release_thread_resources(self) -> None:
        discard(log_connection())


def dual_write_target(options: dict) -> BackgroundWriter:
    """The dual-write secondary: legacy UPDATEs on a background thread of their own."""
    max_lines = options.get("legacy_max_lines", DEFAULT_MAX_LINES)
    return BackgroundWriter(
        partial(update_legacy_column, max_lines=max_lines),
        FailureReporter("job log (legacy JSON dual-write)"),
        name="ami-joblog-legacy",
        batch_size=options.get("batch_size", 1000),
        interval=options.get("interval", 0.25),
        max_lines=options.get("max_lines", 50_000),
        on_thread_exit=close_thread_connection,
    )
