"""Starting a job: collect its images into per-image tasks and publish them to NATS."""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import QuerySet

from ami.jobs.locking import mark_stage, set_collected, touch_heartbeat, transition
from ami.jobs.logging import job_logger
from ami.jobs.models import ImageTask, Job
from ami.jobs.states import JobStatus, StageKey, StageStatus
from ami.main.models import SourceImage
from ami.ml.models import TaskPublication
from ami.ml.orchestration import nats
from ami.ml.orchestration.finish import finish_job
from ami.ml.orchestration.publication import record_published, start_publication

logger = logging.getLogger(__name__)

TASK_INSERT_BATCH = 1000  # rows per INSERT


class BadJobParams(ValueError):
    """The job's params cannot select images."""


def selected_images(project_id: int, params: dict | None) -> QuerySet[SourceImage]:
    """The images a job runs on: `params.image_ids`, else the project's, up to `params.limit`."""
    params = params or {}
    images = SourceImage.objects.filter(project_id=project_id).order_by("pk")
    if "image_ids" in params:
        ids = params["image_ids"]
        if not isinstance(ids, list) or not all(type(i) is int for i in ids):
            raise BadJobParams("params.image_ids must be a list of integers")
        images = images.filter(pk__in=ids)
    limit = params.get("limit")
    if limit is not None:
        if type(limit) is not int or limit < 0:
            raise BadJobParams("params.limit must be a non-negative integer")
        images = images[:limit]
    return images


def select_image_ids(job: Job) -> list[int]:
    """The ids of the images a job runs on (see `selected_images`)."""
    return list(selected_images(job.project_id, job.params).values_list("pk", flat=True))


def collect(job: Job) -> list[int]:
    """Record one PENDING task per image and size the stages, once; return the image ids.

    Collecting is one transaction, so a retried start either finds it done (and reads the
    same images back, in the same order) or does it from scratch.
    """
    if TaskPublication.objects.filter(job_id=job.pk).exists():
        return collected_image_ids(job.pk)
    mark_stage(job.pk, StageKey.COLLECT, StageStatus.STARTED)
    image_ids = select_image_ids(job)
    with transaction.atomic():
        ImageTask.objects.bulk_create(
            [ImageTask(job_id=job.pk, source_image_id=image_id) for image_id in image_ids],
            batch_size=TASK_INSERT_BATCH,
            ignore_conflicts=True,
        )
        set_collected(job.pk, len(image_ids))
        start_publication(job.pk, len(image_ids))
    job_logger(job.pk).info("Collected %d images", len(image_ids))
    return image_ids


def collected_image_ids(job_id: int) -> list[int]:
    """The images of a collected job, in the order they are published."""
    tasks = ImageTask.objects.filter(job_id=job_id).order_by("source_image_id")
    return list(tasks.values_list("source_image_id", flat=True))


def publish(job_id: int, image_ids: list[int], *, fresh: bool) -> None:
    """Publish the tasks NATS has not confirmed yet, recording progress after each chunk.

    A chunk that failed half way is published again whole: the stream drops the messages it
    already holds (same message id, within `nats.DUPLICATE_WINDOW`). If the stream itself
    is gone, everything is published again.
    """
    existed = nats.create_queue(job_id, fresh=fresh)
    begin = published_count(job_id) if existed else 0
    if begin:
        job_logger(job_id).info("Resuming publishing at task %d of %d", begin, len(image_ids))
    size = nats.publish_chunk()
    for start in range(begin, len(image_ids), size):
        chunk = image_ids[start : start + size]
        nats.publish(job_id, [{"job_id": job_id, "image_id": image_id} for image_id in chunk])
        record_published(job_id, start + len(chunk))


def collect_and_publish(job_id: int) -> None:
    """Collect and publish a PENDING job; resume one whose publishing was interrupted.

    Transient errors (a killed connection, NATS down or reconnecting) propagate: the Celery
    task retries, and the retry resumes after the last chunk NATS confirmed.
    """
    job = Job.objects.get(pk=job_id)
    if job.status == JobStatus.PENDING:
        if not transition(job_id, JobStatus.STARTED):
            return
        fresh = True
    elif job.status == JobStatus.STARTED and not is_published(job_id):
        fresh = False  # an earlier attempt failed or died while collecting or publishing
    else:
        return
    if job.pipeline_id is None:
        finish_job(job_id, JobStatus.FAILURE, reason="the job has no pipeline")
        return
    try:
        image_ids = collect(job)
    except BadJobParams as exc:
        finish_job(job_id, JobStatus.FAILURE, reason=str(exc))
        return
    if not image_ids:
        finish_job(job_id, JobStatus.SUCCESS)
        return
    publish(job_id, image_ids, fresh=fresh)
    mark_stage(job_id, StageKey.PROCESS, StageStatus.STARTED)
    touch_heartbeat(job_id)
    job_logger(job_id).info("Published %d tasks; waiting for processing services", len(image_ids))


def fail_start(job_id: int, exc: BaseException) -> None:
    """Fail a job whose start kept failing after every retry."""
    logger.warning("Job %s could not start: %r", job_id, exc)
    finish_job(job_id, JobStatus.FAILURE, reason=f"could not start: {exc!r}")


def published_count(job_id: int) -> int:
    """How many of the job's tasks NATS confirmed, in image id order (0 if none recorded)."""
    publication = TaskPublication.objects.filter(job_id=job_id).first()
    return publication.published if publication else 0


def is_published(job_id: int) -> bool:
    """True once NATS confirmed every task of the job."""
    publication = TaskPublication.objects.filter(job_id=job_id).first()
    return publication is not None and publication.complete
