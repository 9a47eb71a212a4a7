"""Copy the lines of the legacy JSON log column into JobLog rows.

Idempotent and resumable: each job is copied in one transaction, and its rows carry
`context["source"] == "legacy_json"`; a job that has such rows is skipped, so a rerun (or a
run after an interruption) adds nothing twice. For a job that already has live rows (written
during the dual-write rollout), only legacy lines timestamped before its first live row are
copied: the rest are already there.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.db.models import Exists, OuterRef
from rich.progress import Progress

from ami.jobs.logging.legacy import BACKFILL_SOURCE, LegacyLine, legacy_lines
from ami.jobs.models import Job, JobLog


class Command(BaseCommand):
    help = "Copy legacy JSON job logs into JobLog rows (idempotent, resumable, batched)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=100, help="jobs read per query")
        parser.add_argument("--job", type=int, action="append", help="only this job (repeatable)")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(
        self, *args: object, batch_size: int, job: list[int] | None, no_progress: bool, **kw: object
    ) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be 1 or more")
        pending = Job.objects.exclude(
            Exists(JobLog.objects.filter(job=OuterRef("pk"), context__source=BACKFILL_SOURCE))
        )
        if job:
            pending = pending.filter(pk__in=job)
        jobs_done = lines_added = 0
        with Progress(disable=no_progress) as progress:
            task = progress.add_task("backfilling job logs", total=pending.count())
            last_id = 0
            while ids := list(
                pending.filter(pk__gt=last_id)
                .order_by("pk")
                .values_list("pk", flat=True)[:batch_size]
            ):
                for job_id in ids:
                    added = backfill_job(job_id)
                    jobs_done += added > 0
                    lines_added += added
                    progress.advance(task)
                last_id = ids[-1]
        self.stdout.write(f"backfilled {lines_added} lines into {jobs_done} jobs")


def backfill_job(job_id: int) -> int:
    """Copy one job's legacy lines in one transaction; return how many rows were added."""
    with transaction.atomic():
        job = Job.objects.only("pk", "created_at", "legacy_logs").get(pk=job_id)
        lines = lines_to_copy(job)
        JobLog.objects.bulk_create(
            [
                JobLog(
                    job_id=job_id,
                    level=line.level,
                    message=line.message.replace("\x00", ""),
                    context={"source": BACKFILL_SOURCE, "stream": line.stream, "index": i},
                    created_at=line.created_at or job.created_at,
                )
                for i, line in enumerate(lines)
            ],
            batch_size=1000,
        )
    return len(lines)


def lines_to_copy(job: Job) -> list[LegacyLine]:
    lines = legacy_lines(job.legacy_logs)
    first_live = JobLog.objects.of_job(job.pk).order_by("id").values_list("created_at", flat=True)
    first_live_at = first_live.first()
    if first_live_at is None:
        return lines
    # Legacy timestamps have whole seconds: keep only lines from an earlier second.
    cutoff = first_live_at.replace(microsecond=0)
    return [line for line in lines if line.created_at is not None and line.created_at < cutoff]
