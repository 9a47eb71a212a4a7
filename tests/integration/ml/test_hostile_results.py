"""Hostile result batches are a 400 naming the field; nothing is queued, nothing is poisoned.

Bodies are sent as raw JSON text, so the hostile values arrive exactly as a client would send
them (JSON escapes for NUL and lone surrogates, number literals too large for a float).
"""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from ami.jobs.models import ImageTask
from ami.jobs.states import TaskState
from ami.ml.models import ProcessingService
from ami.ml.orchestration import nats
from ami.ml.tasks import process_nats_pipeline_result
from tests.integration.ml.conftest import make_result, reserve_all

pytestmark = pytest.mark.django_db(transaction=True)

MEGABYTE = "x" * 1_000_000

# Where each string field of a result lives, as the error names it, and how to set it.
STRING_FIELDS = {
    "error": lambda r, v: r.update(detections=[], error=v),
    "reply_subject": lambda r, v: r.update(reply_subject=v),
    "detections.0.algorithm": lambda r, v: r["detections"][0].update(algorithm=v),
    "detections.0.classifications.0.label": (
        lambda r, v: r["detections"][0]["classifications"][0].update(label=v)
    ),
    "detections.0.classifications.0.algorithm": (
        lambda r, v: r["detections"][0]["classifications"][0].update(algorithm=v)
    ),
}
HOSTILE_STRINGS = {
    "nul": "moth\x00",
    "lone-surrogate": "moth\udc80",
    "bell": "moth\x07",
    "escape": "\x1b[31mmoth",
    "one-megabyte": MEGABYTE,
}
# Numbers: (where, how to set it, the JSON literal). 1e400 parses as infinity.
HOSTILE_NUMBERS = {
    "score-1e400": ("detections.0.score", lambda r: r["detections"][0].update(score="@")),
    "label-score-1e400": (
        "detections.0.classifications.0.score",
        lambda r: r["detections"][0]["classifications"][0].update(score="@"),
    ),
    "bbox-1e400": ("detections.0.bbox.x2", lambda r: r["detections"][0]["bbox"].update(x2="@")),
    "bbox-absurd": (
        "detections.0.bbox.x2",
        lambda r: r["detections"][0]["bbox"].update(x2="@", y2="@"),
    ),
    "image-id-huge": ("image_id", lambda r: r.update(image_id="@")),
}
NUMBER_LITERALS = {
    "score-1e400": "1e400",
    "label-score-1e400": "-1e400",
    "bbox-1e400": "1e400",
    "bbox-absurd": "1e300",
    "image-id-huge": "1" + "0" * 30,
}


@pytest.fixture
def client() -> APIClient:
    _, token = ProcessingService.create_with_token("hostile service")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api


@pytest.fixture
def valid_result(started_job, images) -> dict:
    tasks = reserve_all(started_job.pk)
    return make_result(images[0].pk, tasks[images[0].pk])


def post_raw(client: APIClient, job_id: int, body: str):
    return client.post(f"/api/jobs/{job_id}/result", body, content_type="application/json")


def assert_refused(response, field: str | None, broker) -> None:
    assert response.status_code == 400, response.content[:300]
    if field is not None:
        assert field in [error["field"] for error in response.json()["errors"]]
        assert field in response.json()["detail"]
    assert broker.llen("ml_results") == 0


@pytest.mark.parametrize("value", HOSTILE_STRINGS.values(), ids=HOSTILE_STRINGS.keys())
@pytest.mark.parametrize("where", STRING_FIELDS)
def test_hostile_string_in_any_field_is_a_400_naming_it(
    client, started_job, valid_result, broker, where, value
):
    STRING_FIELDS[where](valid_result, value)
    body = json.dumps({"results": [valid_result]})  # ensure_ascii: \u0000, \udc80 escapes
    assert_refused(post_raw(client, started_job.pk, body), f"results.0.{where}", broker)


@pytest.mark.parametrize("case", HOSTILE_NUMBERS)
def test_non_finite_or_absurd_number_is_a_400_naming_it(
    client, started_job, valid_result, broker, case
):
    where, mark = HOSTILE_NUMBERS[case]
    mark(valid_result)
    body = json.dumps({"results": [valid_result]}).replace('"@"', NUMBER_LITERALS[case])
    assert_refused(post_raw(client, started_job.pk, body), f"results.0.{where}", broker)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_literals_are_a_400(client, started_job, valid_result, broker, literal):
    valid_result["detections"][0]["score"] = "@"
    body = json.dumps({"results": [valid_result]}).replace('"@"', literal)
    assert_refused(post_raw(client, started_job.pk, body), None, broker)


def test_deeply_nested_json_is_a_400(client, started_job, broker):
    depth = 100_000
    body = '{"results": ' + "[" * depth + "]" * depth + "}"
    assert_refused(post_raw(client, started_job.pk, body), None, broker)


def test_too_many_results_or_classifications_are_a_400(client, started_job, valid_result, broker):
    body = json.dumps({"results": [valid_result] * 1001})
    assert_refused(post_raw(client, started_job.pk, body), "results", broker)
    detection = valid_result["detections"][0]
    detection["classifications"] = detection["classifications"][:1] * 1001
    body = json.dumps({"results": [valid_result]})
    assert_refused(
        post_raw(client, started_job.pk, body), "results.0.detections.0.classifications", broker
    )


def test_unusual_but_valid_text_is_accepted_and_saved(
    client, started_job, images, valid_result, broker
):
    valid_result["detections"][0]["classifications"][0]["label"] = "Noctuidae 🦋 «moth»"
    body = json.dumps({"results": [valid_result]})
    response = post_raw(client, started_job.pk, body)
    assert response.status_code == 202, response.content
    outcome = process_nats_pipeline_result(
        started_job.pk, valid_result, valid_result["reply_subject"]
    )
    assert outcome["counted"]
    task = ImageTask.objects.get(job=started_job, source_image=images[0])
    assert task.state == TaskState.DONE


@pytest.mark.parametrize(
    "body",
    ['{"batch": 1e400}', '{"batch": NaN}', '{"batch": "\\u0000"}', '{"batch": -1}', "[" * 100_000],
    ids=["infinite", "nan", "nul", "negative", "deep"],
)
def test_hostile_reserve_request_is_a_400(client, started_job, body):
    response = client.post(
        f"/api/jobs/{started_job.pk}/tasks", body, content_type="application/json"
    )
    assert response.status_code == 400, response.content[:200]
    assert nats.consumer_state(started_job.pk).ack_pending == 0  # nothing was handed out
