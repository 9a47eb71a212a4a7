"""The job core's Celery tasks (the ML job's own tasks are in `ami.ml.tasks`)."""

from __future__ import annotations

from celery import shared_task

from ami.jobs.logging import retention
from ami.jobs.logging.config import job_logs_setting


@shared_task(name="ami.jobs.tasks.prune_job_logs", ignore_result=True)
def prune_job_logs() -> int:
    """Apply the job log retention (`JOB_LOGS["RETENTION"]`), then delete orphaned lines."""
    setting = job_logs_setting()["RETENTION"]
    age = retention.parse_age(setting) if setting else None
    return retention.apply_retention(age)
