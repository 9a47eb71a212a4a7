"""JobLog: one row per job log line, ordered by id."""

from __future__ import annotations

import logging

from django.db import models
from django.db.models.functions import Now


class JobLog(models.Model):
    id = models.BigAutoField(primary_key=True)
    # No database constraint: its check would take FOR KEY SHARE on the job row and so wait
    # behind anyone holding that row FOR UPDATE, and logging must never wait on the job row.
    # Deleting a job still deletes its lines (Django's cascade, one DELETE by job_id);
    # a line written for a job deleted meanwhile is an orphan that prune_job_logs removes.
    # No separate index either: the (job, id) index serves every lookup by job.
    job = models.ForeignKey(
        "jobs.Job",
        on_delete=models.CASCADE,
        related_name="log_entries",
        db_constraint=False,
        db_index=False,
    )
    level = models.PositiveSmallIntegerField(
        default=logging.INFO, help_text="Python logging level number"
    )
    message = models.TextField()
    context = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["job", "id"], name="joblog_job_id_idx")]

    def __str__(self) -> str:
        return f"[{self.level_name}] {self.message[:80]}"

    @property
    def level_name(self) -> str:
        return logging.getLevelName(self.level)
