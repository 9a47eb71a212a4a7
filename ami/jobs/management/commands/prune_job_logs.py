"""Retention for JobLog: rows older than an age, beyond the newest N per job, or orphaned.

Orphans are lines written for a job deleted meanwhile (JobLog.job has no database
constraint, see the model).

Deletes in batches (short statements, no long lock), so it can run while jobs log.
"""

from __future__ import annotations

import re
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count
from django.utils import timezone

from ami.jobs.models import Job, JobLog

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str) -> timedelta:
    """Parse "30d", "12h", "90m", "3600s" or "2w"."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise CommandError(f"--older-than: {text!r} is not a duration like 30d, 12h, 90m or 2w")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


class Command(BaseCommand):
    help = "Delete job log rows older than an age and/or beyond the newest N per job."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than", help="age, e.g. 30d, 12h, 2w")
        parser.add_argument("--keep-per-job", type=int, help="keep at most the newest N per job")
        parser.add_argument(
            "--orphans", action="store_true", help="delete lines whose job no longer exists"
        )
        parser.add_argument("--batch-size", type=int, default=10_000, help="rows per DELETE")
        parser.add_argument("--dry-run", action="store_true", help="count, do not delete")

    def handle(
        self,
        *args: object,
        older_than: str | None,
        keep_per_job: int | None,
        orphans: bool,
        batch_size: int,
        dry_run: bool,
        **options: object,
    ) -> None:
        if older_than is None and keep_per_job is None and not orphans:
            raise CommandError("give --older-than, --keep-per-job, --orphans, or a combination")
        if keep_per_job is not None and keep_per_job < 0:
            raise CommandError("--keep-per-job must be 0 or more")
        if batch_size < 1:
            raise CommandError("--batch-size must be 1 or more")
        deleted = 0
        if older_than is not None:
            cutoff = timezone.now() - parse_age(older_than)
            deleted += delete_batched(
                JobLog.objects.filter(created_at__lt=cutoff), batch_size, dry_run
            )
        if keep_per_job is not None:
            deleted += prune_per_job(keep_per_job, batch_size, dry_run)
        if orphans:
            orphaned = JobLog.objects.exclude(job_id__in=Job.objects.values("pk"))
            deleted += delete_batched(orphaned, batch_size, dry_run)
        verb = "would delete" if dry_run else "deleted"
        self.stdout.write(f"{verb} {deleted} job log rows")


def delete_batched(rows, batch_size: int, dry_run: bool) -> int:
    """Delete the rows of a queryset in id batches; return how many (would be) deleted."""
    if dry_run:
        return rows.count()
    deleted = 0
    while ids := list(rows.order_by("id").values_list("id", flat=True)[:batch_size]):
        deleted += JobLog.objects.filter(id__in=ids).delete()[0]
    return deleted


def prune_per_job(keep: int, batch_size: int, dry_run: bool) -> int:
    over_cap = (
        JobLog.objects.values("job_id")
        .annotate(n=Count("id"))
        .filter(n__gt=keep)
        .values_list("job_id", flat=True)
    )
    deleted = 0
    for job_id in list(over_cap):
        newest = JobLog.objects.filter(job_id=job_id).order_by("-id").values_list("id", flat=True)
        boundary = newest[keep]  # the newest row that goes
        older = JobLog.objects.filter(job_id=job_id, id__lte=boundary)
        deleted += delete_batched(older, batch_size, dry_run)
    return deleted
