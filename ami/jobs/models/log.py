"""JobLog: one row per job log line, read in `(txid, id)` order (see `ami.jobs.api.horizon`).

The table is partitioned by `job_partition_key`, the job's `log_partition_key` (migration
0010, `ami.jobs.log_partitions`). Every row must carry it, and every read of one job's lines
should name it (`JobLog.objects.of_job`), so that PostgreSQL plans and reads one partition.
A job's key never changes: this process remembers the keys it looked up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TypeVar

from django.contrib.postgres.indexes import BrinIndex, GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import connections, models
from django.db.models import F, Func, Value
from django.db.models.functions import Now

from ami.jobs import log_partitions

SEARCH_CONFIG = "simple"  # text search configuration: words lowercased, no stemming, no stop words


def message_words() -> Func:
    """`to_tsvector('simple', message)`: the expression the message search index holds."""
    return Func(
        Value(SEARCH_CONFIG), F("message"), function="to_tsvector", output_field=SearchVectorField()
    )


class LogWriteTxid(models.Func):
    """`jobs_joblog_txid()`: the ordering key of the transaction writing a line (migration 0003).

    The writing transaction's own id, taken after the transaction marked itself as a log
    writer, so that a reader who sees no open log writer below H can serve every key < H.
    """

    function = "jobs_joblog_txid"
    arity = 0
    output_field = models.BigIntegerField()
    allowed_default = True


T = TypeVar("T")


class JobLogQuerySet(models.QuerySet):
    def of_job(self, job_id: int) -> models.QuerySet:
        """The lines of one job, in its partition only (none if the job does not exist)."""
        key = log_partitions.partition_keys([job_id], using=self.db).get(job_id)
        if key is None:
            return self.none()
        return self.filter(job_id=job_id, job_partition_key=key)

    def bulk_create(self, objs: Iterable[JobLog], *args, **kwargs) -> list[JobLog]:
        objs = list(objs)
        create = super().bulk_create
        return _write_keyed(objs, self.db, lambda: create(objs, *args, **kwargs))


def _write_keyed(lines: list[JobLog], using: str, write: Callable[[], T]) -> T:
    """`write()` once the lines made without `job_partition_key` have it, and their
    partitions exist (`log_partitions.write_keyed`)."""
    unkeyed = [line for line in lines if line.job_partition_key is None]

    def keyed_write(keys: dict[int, datetime]) -> T:
        for line in unkeyed:
            line.job_partition_key = keys[line.job_id]
        return write()

    job_ids = {line.job_id for line in unkeyed}
    return log_partitions.write_keyed(connections[using], job_ids, keyed_write)


class JobLog(models.Model):
    id = models.BigAutoField(primary_key=True)
    # No database constraint: its check would take FOR KEY SHARE on the job row and so wait
    # behind anyone holding that row FOR UPDATE, and logging must never wait on the job row.
    # Deleting a job still deletes its lines (Django's cascade, one DELETE by job_id);
    # a line written for a job deleted meanwhile is an orphan that prune_job_logs removes.
    # No separate index either: the (job, job_partition_key, txid, id) index serves every
    # lookup by job.
    job = models.ForeignKey(
        "jobs.Job",
        on_delete=models.CASCADE,
        related_name="log_entries",
        db_constraint=False,
        db_index=False,
    )
    # Readers page by (txid, id): ids are drawn before commit, so id order alone lets a late
    # commit land behind a reader's cursor; txid order with the horizon cannot (horizon.py).
    txid = models.BigIntegerField(db_default=LogWriteTxid(), editable=False)
    # Set by the writer, once per line: a retried write stores nothing twice. Unique with
    # the partition key (a partitioned table's unique keys include it); a line's retry has
    # the same job, so the same partition key.
    key = models.UUIDField(null=True, blank=True, editable=False)
    # The job's `log_partition_key`: which partition holds the line (see the module doc).
    job_partition_key = models.DateTimeField(editable=False)
    level = models.PositiveSmallIntegerField(
        default=logging.INFO, help_text="Python logging level number"
    )
    message = models.TextField()
    context = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(db_default=Now())

    objects = JobLogQuerySet.as_manager()

    class Meta:
        ordering = ["txid", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["key", "job_partition_key"], name="jobs_joblog_key_partition_key"
            )
        ]
        indexes = [
            # A job's lines in the readers' order. The partition key is in it, not only
            # filtered: a job's lines share it, and the planner would misjudge the filter.
            models.Index(
                fields=["job", "job_partition_key", "txid", "id"], name="joblog_job_key_txid_idx"
            ),
            # Lines arrive roughly in time order: a BRIN index finds old ones for retention
            # at a tiny fraction of a btree's size and write cost.
            BrinIndex(fields=["created_at"], name="joblog_created_brin"),
            # Message search (`q`): candidate lines by their words; the exact text is then
            # checked on those only (ami.jobs.api.log_query). An expression index, not a
            # stored column: no table rewrite, nothing for the writers to fill.
            GinIndex(message_words(), name="joblog_message_words_gin"),
            # Context filters (`image`, `worker`, ...) by containment (`context @> {...}`):
            # one small index for every key, instead of one btree per key.
            GinIndex(fields=["context"], opclasses=["jsonb_path_ops"], name="joblog_context_gin"),
        ]

    def __str__(self) -> str:
        return f"[{self.level_name}] {self.message[:80]}"

    def save(self, *args, **kwargs) -> None:
        using = kwargs.get("using") or "default"
        _write_keyed([self], using, lambda: super(JobLog, self).save(*args, **kwargs))

    @property
    def level_name(self) -> str:
        return logging.getLevelName(self.level)
