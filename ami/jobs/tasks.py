"""The job core's Celery tasks (the ML job's own tasks are in `ami.ml.tasks`)."""

from __future__ import annotations

from celery import shared_task

from ami.jobs import log_partitions
from ami.jobs.logging import retention
from ami.jobs.logging.backends.redis import drain_orphan_streams
from ami.jobs.logging.config import job_logs_setting


@shared_task(name="ami.jobs.tasks.prune_job_logs", ignore_result=True)
def prune_job_logs() -> int:
    """Drop the JobLog partitions past retention (`JOB_LOGS["RETENTION"]`), then delete
    orphaned lines; return how many orphans."""
    setting = job_logs_setting()["RETENTION"]
    age = retention.parse_age(setting) if setting else None
    return retention.apply_retention(age)


@shared_task(name="ami.jobs.tasks.prepare_job_log_partitions", ignore_result=True)
def prepare_job_log_partitions() -> None:
    """Make the JobLog partitions of this period and the next ones ahead of their jobs."""
    log_partitions.prepare_ahead()


@shared_task(name="ami.jobs.tasks.drain_job_log_streams", ignore_result=True)
def drain_job_log_streams() -> int:
    """Store the job log lines that writers gone for good (SIGKILLed, host lost) left in
    Redis (the `redis` backend); return how many streams were drained."""
    return drain_orphan_streams()
