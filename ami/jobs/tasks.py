"""The job core's Celery tasks (the ML job's own tasks are in `ami.ml.tasks`)."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from ami.jobs.logging import retention


@shared_task(name="ami.jobs.tasks.prune_job_logs", ignore_result=True)
def prune_job_logs() -> int:
    """Apply the job log retention (`JOB_LOG_RETENTION`), then delete orphaned lines."""
    age = retention.parse_age(settings.JOB_LOG_RETENTION) if settings.JOB_LOG_RETENTION else None
    return retention.apply_retention(age)
