"""JobLog: one row per job log line, ordered by id."""

from __future__ import annotations

import logging

from django.db import models
from django.db.models.functions import Now


class JobLog(models.Model):
    id = models.BigAutoField(primary_key=True)
    job = models.ForeignKey("jobs.Job", on_delete=models.CASCADE, related_name="log_entries")
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
