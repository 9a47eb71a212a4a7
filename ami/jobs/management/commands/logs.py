"""`ami logs JOB [--follow] [--level L] [--json] [--since-cursor C]`: a job's log in a terminal.

Reads through the API's query code (`fetch_page` below the log horizon, `(txid, id)`
cursors), so it prints exactly what the page and the stream would. With `--follow` it keeps
printing new lines until the job is final and its last line (`FINAL_LINE_KEY`) was printed,
as the stream ends. A lost database connection is reopened and reading resumes after the
last printed cursor: no line is skipped or printed twice. Stopping on a final job, it prints
a summary last (`summary_line`): how the job ended and its image counts, so "finished, 3 of
742 images failed" is not mistaken for a clean run; with `--json` on stderr, to keep stdout
one JSON object per line.
"""

from __future__ import annotations

import json
import time

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, InterfaceError, OperationalError, connection

from ami.jobs.api.cursor import START, Cursor
from ami.jobs.api.horizon import log_horizon
from ami.jobs.api.log_query import (
    BadLogQuery,
    LogFilters,
    LogPageRequest,
    fetch_page,
    parse_cursor,
    parse_filters,
)
from ami.jobs.api.stream import FINAL_OR_GONE, end_position, job_status
from ami.jobs.models import Job, JobLogBudget
from ami.jobs.progress import read_progress
from ami.jobs.states import StageKey

BATCH = 1000  # lines per query
POLL_SECONDS = 0.25  # between polls while following
RECONNECT_SECONDS = 0.5  # before reopening a lost connection
MAX_RECONNECTS = 60  # in a row, without a successful read in between


class Command(BaseCommand):
    help = "Print a job's log lines, oldest first; --follow keeps printing until the job ends."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("job", type=int)
        parser.add_argument("--follow", "-f", action="store_true")
        parser.add_argument("--level", default="", help="minimum level: a name or a number")
        parser.add_argument("--json", action="store_true", help="one JSON object per line")
        parser.add_argument("--since-cursor", default="", help="start after this cursor")

    def handle(self, *args, job: int, follow: bool, level: str, json: bool, since_cursor: str,
               **options) -> None:  # fmt: skip
        try:
            filters = parse_filters({"level": level})
            cursor = parse_cursor({"since-cursor": since_cursor}, "since-cursor") or START
        except BadLogQuery as error:
            raise CommandError(str(error)) from None
        if not Job.objects.filter(pk=job).exists():
            raise CommandError(f"no job {job}")
        self.as_json = json
        Follower(self, job, filters, cursor).run(follow)
        summary = summary_line(job)
        if summary:
            (self.stderr if json else self.stdout).write(summary)

    def emit(self, line: dict) -> None:
        if self.as_json:
            self.stdout.write(_json_line(line))
        else:
            self.stdout.write(f"{line['created_at']} {line['level_name']:<8} {line['message']}")


def summary_line(job_id: int) -> str:
    """`job 12 COMPLETED_WITH_ERRORS: 739 processed, 3 failed of 742 images`, with the
    failure reason if any; "" if the job is not final (or gone)."""
    try:
        progress = read_progress(job_id)
    except Job.DoesNotExist:
        return ""
    if not progress.is_final:
        return ""
    stage = progress.stages.get(StageKey.PROCESS)
    processed, failed, total = (stage.processed, stage.failed, stage.total) if stage else (0, 0, 0)
    reason = f"; {progress.failure_reason}" if progress.failure_reason else ""
    counts = f"{processed} processed, {failed} failed of {total} images"
    elided = JobLogBudget.elided(job_id)[0]
    budget = f"; {elided} log lines elided (past the job's log budget)" if elided else ""
    return f"job {job_id} {progress.status}: {counts}{reason}{budget}"


def _json_line(line: dict) -> str:
    return json.dumps(line, separators=(",", ":"), ensure_ascii=False)


class Follower:
    """Reads after a cursor, prints, and moves the cursor only past what was printed."""

    def __init__(self, command: Command, job_id: int, filters: LogFilters, cursor: Cursor):
        self.command, self.job_id, self.filters, self.cursor = command, job_id, filters, cursor
        self.final_seen_at: float | None = None
        self.end_at: Cursor | None = None

    def run(self, follow: bool) -> None:
        failures = 0
        while True:
            try:
                done = self.step(follow)
                failures = 0
            except (OperationalError, InterfaceError, DatabaseError) as error:
                failures += 1
                if failures > MAX_RECONNECTS:
                    raise CommandError(f"database unreachable: {error}") from error
                connection.close()
                time.sleep(RECONNECT_SECONDS)
                continue
            if done:
                return
            time.sleep(POLL_SECONDS)

    def step(self, follow: bool) -> bool:
        """Print the next lines; True when there is nothing more to wait for."""
        while True:
            request = LogPageRequest(after=self.cursor, limit=BATCH, filters=self.filters)
            page = fetch_page(self.job_id, request, log_horizon())
            for line in page.rows:
                self.command.emit(line)
            self.command.stdout.flush()
            self.cursor = page.newer_cursor
            if len(page.rows) < BATCH and not page.partial:
                break
        if not follow:
            return True
        return self._ended()

    def _ended(self) -> bool:
        if self.final_seen_at is None and job_status(self.job_id) in FINAL_OR_GONE:
            self.final_seen_at = time.monotonic()
        if self.final_seen_at is not None and self.end_at is None:
            self.end_at = end_position(self.job_id, time.monotonic() - self.final_seen_at)
        return self.end_at is not None and self.cursor >= self.end_at
