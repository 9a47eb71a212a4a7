"""Pipeline test helpers: results in both wire forms, a processing-service client, starting
a job and reserving its tasks from real NATS, and the Celery result queue."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable

from rest_framework.test import APIClient

from ami.jobs.locking import transition
from ami.jobs.models import Job
from ami.jobs.states import JobStatus
from ami.main.models import Project
from ami.ml.models import ProcessingService
from ami.ml.orchestration import dispatch, nats
from ami.ml.tasks import process_nats_pipeline_result, save_results


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


def wire_result(
    image_id: int,
    reply_subject: str,
    boxes: int = 2,
    error: str | None = None,
    pipeline: str = "test-pipeline",
) -> dict:
    """The protocol's form of `make_result`: one classification with two ranked labels."""
    if error is not None:
        failure = {"error": error, "image_id": str(image_id)}
        return {"reply_subject": reply_subject, "result": failure}
    algorithm = {"name": "Classifier", "key": "classifier"}
    detections = [
        {
            "source_image_id": str(image_id),
            "bbox": {"x1": 10.0 * i, "y1": 5.0, "x2": 10.0 * i + 8, "y2": 15.5},
            "inference_time": None,
            "algorithm": {"name": "Detector", "key": "detector"},
            "timestamp": "2026-11-29T10:00:00Z",
            "crop_image_url": None,
            "classifications": [
                {
                    "classification": "moth",
                    "labels": ["moth", "beetle"],
                    "scores": [0.7, 0.3],
                    "logits": [1.2, -0.4],
                    "features": None,
                    "ood_score": None,
                    "inference_time": None,
                    "algorithm": algorithm,
                    "terminal": True,
                    "timestamp": "2026-11-29T10:00:00Z",
                }
            ],
        }
        for i in range(boxes)
    ]
    result = {
        "pipeline": pipeline,
        "algorithms": {},
        "total_time": 0.25,
        "source_images": [{"id": str(image_id), "url": "http://x/a.jpg", "deployment": None}],
        "detections": detections,
        "deployments": None,
        "config": {"example_config_param": None},
    }
    return {"reply_subject": reply_subject, "result": result}


def service_client(
    name: str = "test service", keyword: str = "Api-Key", projects: Iterable[Project] | None = None
) -> APIClient:
    """An API client authenticated as a new processing service of `projects` (by default,
    of every project that exists now)."""
    service, key = ProcessingService.create_with_key(name)
    service.projects.set(Project.objects.all() if projects is None else projects)
    return keyed_client(key, keyword)


def keyed_client(key: str, keyword: str = "Api-Key") -> APIClient:
    """An API client that sends this processing-service key."""
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"{keyword} {key}")
    return api


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


def queued_tasks(broker) -> list[tuple[str, list, dict]]:
    """(task name, args, kwargs) of every queued result task, oldest first."""
    calls = []
    for raw in reversed(broker.lrange("ml_results", 0, -1)):
        message = json.loads(raw)
        args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        calls.append((message["headers"]["task"], args, kwargs))
    return calls


def queued_results(broker) -> list[dict]:
    """Every queued result payload, oldest first, whichever task form carries it."""
    found = []
    for name, args, _ in queued_tasks(broker):
        found.extend(args[1] if name.endswith("save_results") else [args[1]])
    return found


def drain_result_queue(broker) -> int:
    """Execute every queued result task, as a late Celery worker would; return how many
    results they carried."""
    executed = 0
    while raw := broker.rpop("ml_results"):
        message = json.loads(raw)
        args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        if message["headers"]["task"].endswith("save_results"):
            save_results(*args, **kwargs)
            executed += len(args[1])
        else:
            process_nats_pipeline_result(*args, **kwargs)
            executed += 1
    return executed
