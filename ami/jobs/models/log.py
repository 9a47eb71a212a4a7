"""JobLog: one row per job log line, read in `(txid, id)` order (see `ami.jobs.api.horizon`)."""

from __future__ import annotations

import logging

from django.contrib.postgres.indexes import BrinIndex, GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.db.models import F, Func, Value
from django.db.models.functions import Now

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


class JobLog(models.Model):
    id = models.BigAutoField(primary_key=True)
    # No database constraint: its check would take FOR KEY SHARE on the job row and so wait
    # behind anyone holding that row FOR UPDATE, and logging must never wait on the job row.
    # Deleting a job still deletes its lines (Django's cascade, one DELETE by job_id);
    # a line written for a job deleted meanwhile is an orphan that prune_job_logs removes.
    # No separate index either: the (job, txid, id) index serves every lookup by job.
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
    # Set by the writer, once per line: a retried write stores nothing twice.
    key = models.UUIDField(null=True, blank=True, unique=True, editable=False)
    level = models.PositiveSmallIntegerField(
        default=logging.INFO, help_text="Python logging level number"
    )
    message = models.TextField()
    context = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["txid", "id"]
        indexes = [
            models.Index(fields=["job", "txid", "id"], name="joblog_job_txid_idx"),
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

    @property
    def level_name(self) -> str:
        return logging.getLevelName(self.level)
