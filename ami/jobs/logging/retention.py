"""JobLog retention: delete rows older than an age, beyond the newest N per job, or orphaned.

Orphans are lines written for a job deleted meanwhile (JobLog.job has no database
constraint, see the model). Deletes run in id batches (short statements, no long lock), so
retention can run while jobs log. Used by `ami prune_job_logs` and the periodic task.
"""

from __future__ import annotations

import re
from datetime import timedelta

from django.db.models import Count, QuerySet
from django.utils import timezone

from ami.jobs.models import Job, JobLog

DEFAULT_BATCH_SIZE = 10_000  # rows per DELETE
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str) -> timedelta:
    """Parse "30d", "12h", "90m", "3600s" or "2w"; raise ValueError on anything else."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 30d, 12h, 90m or 2w")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def delete_batched(rows: QuerySet, batch_size: int, dry_run: bool = False) -> int:
    """Delete the rows of a queryset in id batches; return how many (would be) deleted."""
    if dry_run:
        return rows.count()
    deleted = 0
    while ids := list(rows.order_by("id").values_list("id", flat=True)[:batch_size]):
        deleted += JobLog.objects.filter(id__in=ids).delete()[0]
    return deleted


def prune_older_than(age: timedelta, batch_size: int, dry_run: bool = False) -> int:
    cutoff = timezone.now() - age
    return delete_batched(JobLog.objects.filter(created_at__lt=cutoff), batch_size, dry_run)


def prune_per_job(keep: int, batch_size: int, dry_run: bool = False) -> int:
    """Keep the newest `keep` lines of each job."""
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


def prune_orphans(batch_size: int, dry_run: bool = False) -> int:
    orphaned = JobLog.objects.exclude(job_id__in=Job.objects.values("pk"))
    return delete_batched(orphaned, batch_size, dry_run)
