"""A job: one pipeline run over a project's images, its stages and per-image tasks.

Counters and status change only through `ami.jobs.locking` (guarded, single-statement
updates); `save()` has no side effects.
"""

from __future__ import annotations

import logging

from django.db import models
from django.utils import timezone

from ami.jobs.logging import JobLoggerAdapter, job_logger
from ami.jobs.logging.legacy import MAX_LINES as LEGACY_LOGS_LIMIT
from ami.jobs.logging.legacy import format_entry
from ami.jobs.states import (
    FINAL_STATES,
    JobStatus,
    StageKey,
    StageStatus,
    TaskState,
    status_text,
)


def empty_legacy_logs() -> dict:
    return {"stdout": [], "stderr": []}


class Job(models.Model):
    project = models.ForeignKey("main.Project", on_delete=models.CASCADE, related_name="jobs")
    pipeline = models.ForeignKey(
        "ml.Pipeline", on_delete=models.PROTECT, null=True, blank=True, related_name="jobs"
    )
    name = models.CharField(max_length=200)
    status = models.CharField(
        max_length=32, choices=JobStatus.choices, default=JobStatus.CREATED, db_index=True
    )
    params = models.JSONField(
        default=dict, blank=True, help_text="Job parameters, e.g. {'limit': 100}"
    )
    failure_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Where the job's log lines live: every JobLog row of the job carries this value as its
    # partition key (ami.jobs.log_partitions). The job's creation time; 1970-01-01, the
    # legacy partition's key, for jobs created before JobLog was partitioned. Never changes.
    log_partition_key = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    # The upstream JSON log column, kept for the rollout: {"stdout": [...], "stderr": [...]},
    # newest first. New code writes JobLog rows; see docs/logging.md.
    legacy_logs = models.JSONField(db_column="logs", default=empty_legacy_logs, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"Job #{self.pk} {self.name} ({self.status})"

    @property
    def logger(self) -> JobLoggerAdapter:
        """This job's log: `job.logger.info("...", extra={"image_id": 3})`."""
        return job_logger(self.pk)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATES

    @property
    def status_text(self) -> str:
        """The status as the pages' badges show it ("Completed with errors", else the name)."""
        return status_text(self.status)

    @property
    def logs(self) -> dict[str, list[str]]:
        """The legacy `{stdout, stderr}` shape for old readers; see `recent_logs`."""
        return self.recent_logs(LEGACY_LOGS_LIMIT)

    def recent_logs(self, limit: int) -> dict[str, list[str]]:
        """The newest `limit` JobLog lines, newest first, as `{stdout, stderr}`.

        `stdout` holds every line and `stderr` the ERROR-and-above ones among them, as the
        legacy column did. A job with no JobLog rows (written before the table existed and
        not backfilled) is served from the legacy JSON column, capped the same way.
        """
        if limit <= 0:
            return empty_legacy_logs()
        rows = list(
            self.log_entries.filter(job_partition_key=self.log_partition_key)
            .order_by("-txid", "-id")
            .values_list("created_at", "level", "message")[:limit]
        )
        if not rows:
            legacy = self.legacy_logs or {}
            return {
                "stdout": list(legacy.get("stdout", []))[:limit],
                "stderr": list(legacy.get("stderr", []))[:limit],
            }
        return {
            "stdout": [format_entry(*row) for row in rows],
            "stderr": [format_entry(*row) for row in rows if row[1] >= logging.ERROR],
        }


class JobStage(models.Model):
    """One stage of a job with exact counters; progress is derived in the same statement."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="stages")
    key = models.CharField(max_length=20, choices=StageKey.choices)
    status = models.CharField(
        max_length=20, choices=StageStatus.choices, default=StageStatus.PENDING
    )
    total = models.PositiveIntegerField(default=0)
    processed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    detections = models.PositiveIntegerField(default=0)
    classifications = models.PositiveIntegerField(default=0)
    progress = models.FloatField(default=0.0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["job", "key"], name="unique_stage_per_job"),
        ]

    def __str__(self) -> str:
        return f"{self.key} {self.status} {self.progress:.0%}"


class ImageTask(models.Model):
    """The state of one image within a job: moves out of PENDING exactly once."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="image_tasks")
    source_image = models.ForeignKey("main.SourceImage", on_delete=models.CASCADE, related_name="+")
    state = models.CharField(max_length=10, choices=TaskState.choices, default=TaskState.PENDING)
    error = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["job", "source_image"], name="unique_task_per_job_image"
            ),
        ]
        indexes = [models.Index(fields=["job", "state"])]

    def __str__(self) -> str:
        return f"image {self.source_image_id} of job {self.job_id}: {self.state}"


class ProgressIncrement(models.Model):
    """Counts of one saved batch of results, not yet added to the job's stage rows.

    A result transaction inserts one of these instead of updating the `process` and
    `results` stage rows, which every result of a job shares: inserts never wait on each
    other, so the stage rows are no hot spot. `ami.jobs.locking.fold_increments` moves them
    into the stage rows (and deletes them) right after, one folder per job at a time.
    Like JobLog, it references the job without a database constraint: inserting one takes
    no lock on the job row.
    """

    id = models.BigAutoField(primary_key=True)
    job = models.ForeignKey(
        Job, on_delete=models.CASCADE, db_constraint=False, related_name="+", db_index=True
    )
    processed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    detections = models.PositiveIntegerField(default=0)
    classifications = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"job {self.job_id}: +{self.processed} processed, +{self.failed} failed"
