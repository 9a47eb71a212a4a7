"""Starting a job: collect its images into per-image tasks and publish them to NATS."""

from __future__ import annotations

import logging

from ami.jobs.locking import mark_stage, set_collected, touch_heartbeat, transition
from ami.jobs.logging import job_logger
from ami.jobs.models import ImageTask, Job, JobStage
from ami.jobs.states import JobStatus, StageKey, StageStatus
from ami.main.models import SourceImage
from ami.ml.orchestration import nats
from ami.ml.orchestration.finish import finish_job

logger = logging.getLogger(__name__)

TASK_INSERT_BATCH = 1000  # rows per INSERT


class BadJobParams(ValueError):
    """The job's params cannot select images."""


def select_image_ids(job: Job) -> list[int]:
    """The images a job runs on: `params.image_ids`, else the project's, up to `params.limit`."""
    params = job.params or {}
    images = SourceImage.objects.filter(project_id=job.project_id).order_by("pk")
    if "image_ids" in params:
        ids = params["image_ids"]
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            raise BadJobParams("params.image_ids must be a list of integers")
        images = images.filter(pk__in=ids)
    limit = params.get("limit")
    if limit is not None:
        if not isinstance(limit, int) or limit < 0:
            raise BadJobParams("params.limit must be a non-negative integer")
        images = images[:limit]
    return list(images.values_list("pk", flat=True))


def collect(job: Job) -> list[int]:
    """Record one PENDING task per image (idempotent) and size the stages; return image ids."""
    mark_stage(job.pk, StageKey.COLLECT, StageStatus.STARTED)
    image_ids = select_image_ids(job)
    ImageTask.objects.bulk_create(
        [ImageTask(job_id=job.pk, source_image_id=image_id) for image_id in image_ids],
        batch_size=TASK_INSERT_BATCH,
        ignore_conflicts=True,
    )
    set_collected(job.pk, len(image_ids))
    return image_ids


def run_job(job_id: int) -> None:
    """Collect and publish a PENDING job; resume one whose publishing was interrupted.

    Transient errors (a killed connection, a NATS reconnect) propagate: the Celery task
    retries, and the retry resumes where this attempt stopped.
    """
    job = Job.objects.get(pk=job_id)
    if job.status == JobStatus.PENDING:
        if not transition(job_id, JobStatus.STARTED):
            return
        fresh = True
    elif job.status == JobStatus.STARTED and not _published(job_id):
        fresh = False  # a worker died while publishing: do it again, duplicates are dropped
    else:
        return
    log = job_logger(job_id)
    try:
        image_ids = collect(job)
        log.info("Collected %d images", len(image_ids))
        if not image_ids:
            finish_job(job_id, JobStatus.SUCCESS)
            return
        payloads = [{"job_id": job_id, "image_id": image_id} for image_id in image_ids]
        nats.publish_tasks(job_id, payloads, fresh=fresh)
    except BadJobParams as exc:
        finish_job(job_id, JobStatus.FAILURE, reason=str(exc))
        return
    mark_stage(job_id, StageKey.PROCESS, StageStatus.STARTED)
    touch_heartbeat(job_id)
    log.info("Published %d tasks; waiting for processing services", len(image_ids))


def fail_start(job_id: int, exc: BaseException) -> None:
    """Fail a job whose start kept failing after every retry."""
    logger.warning("Job %s could not start: %r", job_id, exc)
    finish_job(job_id, JobStatus.FAILURE, reason=f"could not start: {exc!r}")


def _published(job_id: int) -> bool:
    return JobStage.objects.filter(
        job_id=job_id, key=StageKey.PROCESS, status__in=[StageStatus.STARTED, StageStatus.SUCCESS]
    ).exists()
