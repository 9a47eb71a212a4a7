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
from ami.main.models import Classification
from ami.ml.orchestration import nats
from tests.support.ml import drain_result_queue, reserve_all, service_client, wire_result

pytestmark = pytest.mark.django_db(transaction=True)

MEGABYTE = "x" * 1_000_000


# Where each string field of a result lives, as the error names it (after `results.0.`),
# and how to set it.
def _detection(r: dict) -> dict:
    return r["result"]["detections"][0]


def _classification(r: dict) -> dict:
    return _detection(r)["classifications"][0]


def _fail(r: dict, value: object) -> None:
    r["result"] = {"error": value, "image_id": r["result"]["source_images"][0]["id"]}


STRING_FIELDS = {
    "result.error": _fail,
    "reply_subject": lambda r, v: r.update(reply_subject=v),
    "result.pipeline": lambda r, v: r["result"].update(pipeline=v),
    "result.detections.0.algorithm.key": lambda r, v: _detection(r)["algorithm"].update(key=v),
    "result.detections.0.algorithm.name": lambda r, v: _detection(r)["algorithm"].update(name=v),
    "result.detections.0.classifications.0.classification": (
        lambda r, v: _classification(r).update(classification=v)
    ),
    "result.detections.0.classifications.0.algorithm.key": (
        lambda r, v: _classification(r)["algorithm"].update(key=v)
    ),
    "result.detections.0.crop_image_url": lambda r, v: _detection(r).update(crop_image_url=v),
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
    "score-1e400": (
        "result.detections.0.classifications.0.scores.0",
        lambda r: _classification(r)["scores"].__setitem__(0, "@"),
    ),
    "logit-1e400": (
        "result.detections.0.classifications.0.logits.0",
        lambda r: _classification(r)["logits"].__setitem__(0, "@"),
    ),
    "bbox-1e400": (
        "result.detections.0.bbox.x2",
        lambda r: _detection(r)["bbox"].update(x2="@"),
    ),
    "bbox-absurd": (
        "result.detections.0.bbox.x2",
        lambda r: _detection(r)["bbox"].update(x2="@", y2="@"),
    ),
    "time-absurd": (
        "result.detections.0.inference_time",
        lambda r: _detection(r).update(inference_time="@"),
    ),
    "image-id-huge": (
        "result.source_images.0.id",
        lambda r: r["result"]["source_images"][0].update(id="@"),
    ),
}
NUMBER_LITERALS = {
    "score-1e400": "1e400",
    "logit-1e400": "-1e400",
    "bbox-1e400": "1e400",
    "bbox-absurd": "1e300",
    "time-absurd": "1e300",
    "image-id-huge": "1" + "0" * 30,
}


@pytest.fixture
def client(project) -> APIClient:
    return service_client("hostile service", projects=[project])


@pytest.fixture
def valid_result(started_job, images) -> dict:
    tasks = reserve_all(started_job.pk)
    return wire_result(images[0].pk, tasks[images[0].pk])


def post_raw(client: APIClient, job_id: int, body: str):
    return client.post(f"/api/v2/jobs/{job_id}/result/", body, content_type="application/json")


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
    _classification(valid_result)["scores"][0] = "@"
    body = json.dumps({"results": [valid_result]}).replace('"@"', literal)
    assert_refused(post_raw(client, started_job.pk, body), None, broker)


# A bound on the work, not a speed target: the streamed parser once built a path per
# nesting level for a whole 64 KB read before its depth check ran, and spent 25 s of CPU
# on this 200 KB body. It now reads 8 KB at a time and answers in about 0.1 s.
@pytest.mark.timeout(10)
def test_deeply_nested_json_is_a_400(client, started_job, broker):
    depth = 100_000
    body = '{"results": ' + "[" * depth + "]" * depth + "}"
    assert_refused(post_raw(client, started_job.pk, body), None, broker)


def test_too_many_results_or_classifications_are_a_400(client, started_job, valid_result, broker):
    body = json.dumps({"results": [valid_result] * 1001})
    assert_refused(post_raw(client, started_job.pk, body), "results", broker)
    detection = _detection(valid_result)
    detection["classifications"] = detection["classifications"][:1] * 1001
    body = json.dumps({"results": [valid_result]})
    field = "results.0.result.detections.0.classifications"
    assert_refused(post_raw(client, started_job.pk, body), field, broker)


def test_unusual_but_valid_text_is_accepted_and_saved(
    client, started_job, images, valid_result, broker
):
    _classification(valid_result)["classification"] = "Noctuidae 🦋 «moth»"
    body = json.dumps({"results": [valid_result]})
    response = post_raw(client, started_job.pk, body)
    assert response.status_code == 200, response.content
    assert drain_result_queue(broker) == 1
    assert Classification.objects.filter(label="Noctuidae 🦋 «moth»").exists()
    task = ImageTask.objects.get(job=started_job, source_image=images[0])
    assert task.state == TaskState.DONE


@pytest.mark.parametrize(
    "body",
    [
        '{"batch_size": 1e400}',
        '{"batch_size": NaN}',
        '{"batch_size": "\\u0000"}',
        '{"batch_size": -1}',
        "[" * 100_000,
    ],
    ids=["infinite", "nan", "nul", "negative", "deep"],
)
def test_hostile_reserve_request_is_a_400(client, started_job, body):
    response = client.post(
        f"/api/v2/jobs/{started_job.pk}/tasks/", body, content_type="application/json"
    )
    assert response.status_code == 400, response.content[:200]
    assert nats.consumer_state(started_job.pk).ack_pending == 0  # nothing was handed out
