"""The ML job's Celery tasks: thin wrappers around `ami.ml.orchestration`.

`process_nats_pipeline_result` runs on the `ml_results` queue, the others on `jobs`
(`CELERY_TASK_ROUTES`, `CELERY_BEAT_SCHEDULE`). Each task is also registered under the name
it had in `ami.jobs.tasks`, so messages queued by an older release still run after an
upgrade; nothing sends those names any more.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Task, shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

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
LEGACY_PREFIX = "ami.jobs.tasks."


def ml_task(**options: Any) -> Callable[[Callable], Task]:
    """`shared_task` named `ami.ml.tasks.<function>`, also registered under its legacy name."""

    options.setdefault("ignore_result", True)

    def register(func: Callable) -> Task:
        shared_task(name=LEGACY_PREFIX + func.__name__, **options)(func)
        return shared_task(name=f"{__name__}.{func.__name__}", **options)(func)

    return register


class RunJobTask(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        """Called once the last retry failed: the job cannot start."""
        dispatch.fail_start(args[0], exc)


@ml_task(base=RunJobTask, **RETRY_TRANSIENT)
def run_job(job_id: int) -> None:
    """Collect a job's images and publish one NATS task per image (resumable, so retried)."""
    dispatch.collect_and_publish(job_id)


@ml_task(**RETRY_TRANSIENT)
def process_nats_pipeline_result(
    job_id: int, result: dict, reply_subject: str, service_name: str = ""
) -> dict:
    """Save one image's result exactly once, then ack its NATS message (confirmed).

    `service_name` names the processing service that sent it, for the job's log.
    """
    outcome = results.process_result(
        job_id, PipelineResult.model_validate(result), reply_subject, service_name
    )
    return {"counted": outcome.counted, "detections": outcome.detections}


@ml_task()
def check_stale_jobs() -> list[int]:
    """Fail images NATS gave up on; finalize jobs without a heartbeat for `JOB_STALE_AFTER`."""
    undeliverable.fail_undeliverable_tasks()
    return stale.check_stale_jobs()
