"""Hostile content in a processing service's results, through the real API, Redis and NATS.

Each value is put in one field of an otherwise valid result. The answer must be a 400 that
names the field (or says the JSON is malformed), or a 200 after which the queued task,
taken from the real broker and run, saves the result (the image is no longer PENDING).
Never a 500.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable, Iterator

import pytest
from rest_framework.test import APIClient

from ami.jobs.lifecycle import create_job
from ami.jobs.models import ImageTask
from ami.jobs.states import TaskState
from ami.ml.orchestration import nats
from ami.ml.tasks import save_results
from tests.support import hostile
from tests.support.ml import reserve_all, start, wire_result
from tests.support.ml import service_client as new_service_client

pytestmark = pytest.mark.django_db(transaction=True)

Mutation = Callable[[dict, object], None]


def _detection(result: dict) -> dict:
    return result["result"]["detections"][0]


def _classification(result: dict) -> dict:
    return _detection(result)["classifications"][0]


def _set_label(result: dict, value: object) -> None:
    _classification(result)["classification"] = value


def _set_detection_algorithm(result: dict, value: object) -> None:
    _detection(result)["algorithm"]["key"] = value


def _set_classification_algorithm(result: dict, value: object) -> None:
    _classification(result)["algorithm"]["key"] = value


def _set_algorithm_name(result: dict, value: object) -> None:
    _detection(result)["algorithm"]["name"] = value


def _set_error(result: dict, value: object) -> None:
    result["result"] = {"error": value, "image_id": result["result"]["source_images"][0]["id"]}


def _set_bbox_x1(result: dict, value: object) -> None:
    _detection(result)["bbox"]["x1"] = value


def _set_classification_score(result: dict, value: object) -> None:
    _classification(result)["scores"][0] = value


def _set_logit(result: dict, value: object) -> None:
    _classification(result)["logits"][0] = value


def _set_image_id(result: dict, value: object) -> None:
    result["result"]["source_images"][0]["id"] = value
    _detection(result)["source_image_id"] = value


STRING_FIELDS: dict[str, tuple[str, Mutation]] = {
    "label": ("classification", _set_label),
    "detection_algorithm": ("algorithm", _set_detection_algorithm),
    "classification_algorithm": ("algorithm", _set_classification_algorithm),
    "algorithm_name": ("name", _set_algorithm_name),
    "error": ("error", _set_error),
}
NUMBER_FIELDS: dict[str, tuple[str, Mutation]] = {
    "bbox_x1": ("x1", _set_bbox_x1),
    "classification_score": ("scores", _set_classification_score),
    "logit": ("logits", _set_logit),
    "image_id": ("id", _set_image_id),
}


@pytest.fixture
def service_client(project) -> APIClient:
    return new_service_client("hostile service", projects=[project])


@pytest.fixture
def job_tasks(project, pipeline, many_images) -> Iterator[tuple[int, Iterator[tuple[int, str]]]]:
    """A started job of 40 images, every task reserved: (job id, iterator of (image, subject))."""
    job = start(create_job(project, pipeline, "hostile results"))
    yield job.pk, iter(reserve_all(job.pk).items())
    nats.delete_queue(job.pk)


def run_queued_result_task(broker) -> str | None:
    """Take the one queued result task from Redis, run it here; an error text, or None."""
    raw = broker.rpop("ml_results")
    if raw is None:
        return "200 but no task was queued"
    message = json.loads(raw)
    body = message["body"]
    if message["properties"].get("body_encoding") == "base64":
        body = base64.b64decode(body)
    args, kwargs, _ = json.loads(body)
    outcome = save_results.apply(args=args, kwargs=kwargs)
    if not outcome.successful():
        return f"the queued result task failed: {outcome.result!r}"
    return None


def check_one(client, broker, job_id: int, image_id: int, subject: str, field, value) -> str | None:
    """Post one mutated result; a description of what went wrong, or None."""
    leaf, mutate = field
    result = copy.deepcopy(wire_result(image_id, subject, boxes=1))
    mutate(result, value)
    body = json.dumps({"results": [result]})  # NaN/Infinity/surrogates as Python writes them
    url = f"/api/v2/jobs/{job_id}/result/"
    response = client.post(url, body, content_type="application/json")
    if response.status_code == 400:
        text = json.dumps(response.json())
        if leaf in text or "JSON parse error" in text:
            return None
        return f"400 that does not name {leaf!r}: {text[:300]}"
    if response.status_code != 200:
        return f"answered {response.status_code}"
    error = run_queued_result_task(broker)
    if error:
        return error
    state = ImageTask.objects.get(job_id=job_id, source_image_id=image_id).state
    return None if state != TaskState.PENDING else "200 but the result was not saved"


def check_all(client, broker, job_tasks, field, values: dict[str, object]) -> list[str]:
    job_id, tasks = job_tasks
    failures = []
    for case, value in values.items():
        image_id, subject = next(tasks)
        try:
            problem = check_one(client, broker, job_id, image_id, subject, field, value)
        except Exception as exc:  # the test client re-raises a view's exception: a 500
            problem = f"500: {type(exc).__name__}: {str(exc)[:200]}"
        if problem:
            failures.append(f"{case}: {problem}")
    return failures


@pytest.mark.parametrize("field", list(STRING_FIELDS))
def test_hostile_strings_are_refused_or_saved(field, service_client, broker, job_tasks):
    failures = check_all(service_client, broker, job_tasks, STRING_FIELDS[field], hostile.STRINGS)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("field", list(NUMBER_FIELDS))
def test_hostile_numbers_are_refused_or_saved(field, service_client, broker, job_tasks):
    values = {**hostile.NUMBERS, "string": "1", "null": None, "bool": True}
    failures = check_all(service_client, broker, job_tasks, NUMBER_FIELDS[field], values)
    assert not failures, "\n".join(failures)


def test_deep_json_body_is_refused(service_client, job_tasks):
    job_id, _ = job_tasks
    url = f"/api/v2/jobs/{job_id}/result/"
    body = hostile.deep_json_text()
    try:
        status = service_client.post(url, body, content_type="application/json").status_code
    except Exception as exc:  # the test client re-raises a view's exception: a 500
        pytest.fail(f"500: {type(exc).__name__}: {str(exc)[:200]}")
    assert status == 400
