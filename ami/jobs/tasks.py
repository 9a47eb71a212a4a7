"""Celery tasks: thin wrappers around `ami.ml.orchestration`.

`process_nats_pipeline_result` runs on the `ml_results` queue, the others on `jobs`.
"""

from __future__ import annotations

from celery import Task, shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from ami.jobs.logging import retention
from ami.ml.orchestration import dispatch, nats, results, stale, undeliverable
from ami.ml.schemas import PipelineResult

# Errors that a later attempt can get past: a dropped or killed database connection, a NATS
# reconnect or a slow confirmation. SoftTimeLimitExceeded is deliberately absent: it fails
# the task (the NATS message stays unacked and is redelivered).
TRANSIENT_ERRORS = (OperationalError, InterfaceError, nats.NatsTimeoutError, nats.NatsError)
RETRY_TRANSIENT = {
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": 1,  # seconds, doubling
    "retry_backoff_max": 30,  # seconds
    "retry_jitter": True,
    "max_retries": settings.RESULT_TASK_MAX_RETRIES,
}


class RunJobTask(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        """Called once the last retry failed: the job cannot start."""
        dispatch.fail_start(args[0], exc)


@shared_task(
    name="ami.jobs.tasks.run_job",
    base=RunJobTask,
    ignore_result=True,
    **RETRY_TRANSIENT,
)
def run_job(job_id: int) -> None:
    """Collect a job's images and publish one NATS task per image (resumable, so retried)."""
    dispatch.run_job(job_id)


@shared_task(
    name="ami.jobs.tasks.process_nats_pipeline_result",
    ignore_result=True,
    **RETRY_TRANSIENT,
)
def process_nats_pipeline_result(job_id: int, result: dict, reply_subject: str) -> dict:
    """Save one image's result exactly once, then ack its NATS message (confirmed)."""
    outcome = results.process_result(job_id, PipelineResult.model_validate(result), reply_subject)
    return {"counted": outcome.counted, "detections": outcome.detections}


@shared_task(name="ami.jobs.tasks.check_stale_jobs", ignore_result=True)
def check_stale_jobs() -> list[int]:
    """Fail images NATS gave up on; finalize jobs without a heartbeat for `JOB_STALE_AFTER`."""
    undeliverable.fail_undeliverable_tasks()
    return stale.check_stale_jobs()


@shared_task(name="ami.jobs.tasks.prune_job_logs", ignore_result=True)
def prune_job_logs() -> int:
    """Apply the job log retention (`JOB_LOG_RETENTION`) and delete orphaned lines."""
    deleted = retention.prune_orphans(retention.DEFAULT_BATCH_SIZE)
    if settings.JOB_LOG_RETENTION:
        age = retention.parse_age(settings.JOB_LOG_RETENTION)
        deleted += retention.prune_older_than(age, retention.DEFAULT_BATCH_SIZE)
    return deleted
