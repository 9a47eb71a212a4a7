"""Fixtures for pipeline tests: a started job with its tasks published to real NATS."""

from __future__ import annotations

import pytest
import redis
from django.conf import settings

from ami.jobs.lifecycle import create_job
from ami.jobs.locking import transition
from ami.jobs.models import Job
from ami.jobs.states import JobStatus
from ami.main.models import SourceImage
from ami.ml.orchestration import dispatch, nats

QUEUES = ("ml_results", "jobs")


def make_result(image_id: int, reply_subject: str, boxes: int = 2, error: str | None = None):
    """A result with `boxes` detections, each with two classifications."""
    if error is not None:
        return {"image_id": image_id, "reply_subject": reply_subject, "error": error}
    detections = [
        {
            "bbox": {"x1": 10.0 * i, "y1": 5.0, "x2": 10.0 * i + 8, "y2": 15.5},
            "score": 0.9,
            "algorithm": "detector",
            "classifications": [
                {"label": "moth", "score": 0.7, "algorithm": "classifier"},
                {"label": "beetle", "score": 0.3, "algorithm": "classifier"},
            ],
        }
        for i in range(boxes)
    ]
    return {"image_id": image_id, "reply_subject": reply_subject, "detections": detections}


def start(job: Job) -> Job:
    """Run the job's start the way the `jobs` Celery task does, in this process."""
    transition(job.pk, JobStatus.PENDING)
    dispatch.collect_and_publish(job.pk)
    job.refresh_from_db()
    return job


def reserve_all(job_id: int) -> dict[int, str]:
    """Reserve every task of a job: image id -> reply subject."""
    tasks: dict[int, str] = {}
    while batch := nats.reserve(job_id, 100):
        tasks.update({t.payload["image_id"]: t.reply_subject for t in batch})
    return tasks


@pytest.fixture
def many_images(project) -> list[SourceImage]:
    return SourceImage.objects.bulk_create(
        SourceImage(project=project, path=f"img/{i:04d}.png") for i in range(40)
    )


@pytest.fixture
def started_job(project, pipeline, images) -> Job:
    job = start(create_job(project, pipeline, "five images"))
    yield job
    nats.delete_queue(job.pk)


@pytest.fixture
def broker():
    """The Celery broker (Redis), with the project's queues emptied before and after."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.delete(*QUEUES)
    yield client
    client.delete(*QUEUES)
    client.close()
