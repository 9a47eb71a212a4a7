"""JobLog retention: whole partitions by age, and rows beyond the newest N per job or orphaned.

The periodic pass (`apply_retention`, Celery beat) drops the partitions whose jobs all
ended before the retention window (`ami.jobs.log_partitions.drop_expired`: milliseconds a
partition), then deletes orphans. `ami prune_job_logs` also deletes rows one by one: older
than an age (found through the BRIN index on `created_at`), beyond the newest N per job.
Every DELETE pass is a series of short statements, each touching at most `batch_size` rows,
so it can run while jobs log and a time limit only cuts a pass short. Orphans are lines
written for a job deleted meanwhile (JobLog.job has no database constraint, see the model).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from ami.jobs import log_partitions
from ami.jobs.models import Job, JobLog

DEFAULT_BATCH_SIZE = 10_000  # rows per DELETE
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

LOG = JobLog._meta.db_table
JOB = Job._meta.db_table
# Old rows, at most %s of them: a bitmap scan of the BRIN index, no sort, stops at the limit.
OLD_ROWS = f"SELECT id FROM {LOG} WHERE created_at < %s LIMIT %s"
DELETE_OLD = f"DELETE FROM {LOG} WHERE id IN ({OLD_ROWS})"
COUNT_OLD = f"SELECT count(*) FROM {LOG} WHERE created_at < %s"
# The upper id of the next range of at most %s rows after id %s (the primary key's order).
RANGE_END = f"SELECT max(id) FROM (SELECT id FROM {LOG} WHERE id > %s ORDER BY id LIMIT %s) r"
_ORPHANS_IN_RANGE = (
    f"{LOG}.id > %s AND {LOG}.id <= %s AND NOT EXISTS "
    f"(SELECT 1 FROM {JOB} WHERE {JOB}.id = {LOG}.job_id)"
)
DELETE_ORPHANS = f"DELETE FROM {LOG} WHERE {_ORPHANS_IN_RANGE}"
COUNT_ORPHANS = f"SELECT count(*) FROM {LOG} WHERE {_ORPHANS_IN_RANGE}"


def parse_age(text: str) -> timedelta:
    """Parse "30d", "12h", "90m", "3600s" or "2w"; raise ValueError on anything else."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 30d, 12h, 90m or 2w")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def apply_retention(age: timedelta | None, batch_size: int = DEFAULT_BATCH_SIZE) -> int:
    """The periodic retention: expired partitions first (cheap), then orphans; return the
    number of orphans deleted.

    In this order a time limit that interrupts the run still leaves the partitions dropped.
    """
    if age is not None:
        log_partitions.drop_expired(age)
    return prune_orphans(batch_size)


def delete_batched(rows: QuerySet, batch_size: int, dry_run: bool = False) -> int:
    """Delete the rows of a queryset in id batches; return how many (would be) deleted."""
    if dry_run:
        return rows.count()
    deleted = 0
    while ids := list(rows.order_by("id").values_list("id", flat=True)[:batch_size]):
        deleted += JobLog.objects.filter(id__in=ids).delete()[0]
    return deleted


def prune_older_than(age: timedelta, batch_size: int, dry_run: bool = False) -> int:
    """Delete lines logged before now - `age`, at most `batch_size` per statement."""
    cutoff = timezone.now() - age
    if dry_run:
        return _scalar(COUNT_OLD, [cutoff])
    deleted = 0
    while True:
        batch = _execute(DELETE_OLD, [cutoff, batch_size])
        deleted += batch
        if batch < batch_size:
            return deleted


def prune_per_job(keep: int, batch_size: int, dry_run: bool = False) -> int:
    """Keep the newest `keep` lines of each job, newest in the readers' (txid, id) order."""
    over_cap = (
        JobLog.objects.values("job_id")
        .annotate(n=Count("id"))
        .filter(n__gt=keep)
        .values_list("job_id", flat=True)
    )
    deleted = 0
    for job_id in list(over_cap):
        lines = JobLog.objects.of_job(job_id)
        newest = lines.order_by("-txid", "-id").values_list("txid", "id")
        txid, id_ = newest[keep]  # the newest row that goes
        older = lines.filter(Q(txid__lt=txid) | Q(txid=txid, id__lte=id_))
        deleted += delete_batched(older, batch_size, dry_run)
    return deleted


def prune_orphans(batch_size: int, dry_run: bool = False) -> int:
    """Delete lines whose job no longer exists, one id range of `batch_size` rows at a time."""
    statement, run = (COUNT_ORPHANS, _scalar) if dry_run else (DELETE_ORPHANS, _execute)
    deleted, start = 0, 0
    while (end := _scalar(RANGE_END, [start, batch_size])) is not None:
        deleted += run(statement, [start, end])
        start = end
    return deleted


def _execute(sql: str, params: list[object]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _scalar(sql: str, params: list[object]) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]
