"""The ML job's Celery tasks: thin wrappers around `ami.ml.orchestration`.

`save_results` (and `process_nats_pipeline_result`, its one-result form from earlier
releases) runs on the `ml_results` queue, the others on `jobs`
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

from ami.ml.orchestration import dispatch, nats, stale, undeliverable
from ami.ml.orchestration import results as results_module
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


@shared_task(name=f"{__name__}.save_results", ignore_result=True, **RETRY_TRANSIENT)
def save_results(job_id: int, results: list[dict], service_name: str = "") -> dict:
    """Save a batch of results (each once, however often delivered), then ack them.

    `results` are `PipelineResult` dicts, each with its NATS reply subject; `service_name`
    names the processing service that sent them, for the job's log.
    """
    batch = [PipelineResult.model_validate(result) for result in results]
    outcome = results_module.process_batch(job_id, batch, service_name)
    return {"counted": outcome.counted, "repeats": len(outcome.repeats)}


@ml_task(**RETRY_TRANSIENT)
def process_nats_pipeline_result(
    job_id: int, result: dict, reply_subject: str, service_name: str = ""
) -> dict:
    """One result: what releases before batches queued (still run after an upgrade)."""
    outcome = results_module.process_batch(
        job_id, [PipelineResult.model_validate(result)], service_name
    )
    return {"counted": bool(outcome.counted), "detections": outcome.detections}


@ml_task()
def check_stale_jobs() -> list[int]:
    """Fold stray progress counts; fail images NATS gave up on; finalize jobs without a
    heartbeat for `JOB_STALE_AFTER`."""
    results_module.fold_stragglers()
    undeliverable.fail_undeliverable_tasks()
    return stale.check_stale_jobs()
