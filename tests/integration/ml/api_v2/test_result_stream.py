"""Contract: a result post read as a stream refuses bad bodies with a 400 naming the field,
never a 500, and queues nothing."""

from __future__ import annotations

import json

import pytest

from ami.ml.api.wire import MAX_RESULTS_PER_POST
from tests.support.hostile import deep_json_text
from tests.support.ml import reserve_all, wire_result

pytestmark = pytest.mark.django_db(transaction=True)

ERROR_RESULT = b'{"reply_subject": "a", "result": {"error": "x", "image_id": "1"}}'


def url(job) -> str:
    return f"/api/v2/jobs/{job.pk}/result/"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"", "results"),
        (b"{}", "results"),
        (b'{"results": 5}', "results"),
        (b'{"results": {"a": 1}}', "results"),
        (b'"results"', "(body)"),
        (b"42", "(body)"),
        (b'{"results": [', "(body)"),
        (b'{"results": [1, 2', "(body)"),
        (b'{"results": [NaN]}', "(body)"),
        (b'{"results": [{"reply_subject": "\xff"}]}', "(body)"),
        (b'{"results": [7]}', "results.0"),
        (b'{"results": [{"reply_subject": "a\\u0000b", "result": {}}]}', "results.0.reply_subject"),
        (b'{"results": [{"reply_subject": "\\ud800", "result": {}}]}', "results.0.reply_subject"),
        (b'{"results": [], "client_info": {"a": "\\u0000"}}', "client_info"),
        (b'{"results": [], "client_info": 3}', "client_info"),
        (deep_json_text().encode(), "(body)"),
        (b'{"results": [' + deep_json_text(200).encode() + b"]}", "(body)"),
        (b'{"results": [' + b", ".join([ERROR_RESULT] * (MAX_RESULTS_PER_POST + 1)) + b"]}",
         "results"),
    ],
)  # fmt: skip
def test_bad_bodies_are_a_400_naming_the_field(service, started_job, broker, body, field):
    response = service.post(url(started_job), body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert field in [error["field"] for error in response.json()["errors"]]
    assert broker.llen("ml_results") == 0


def test_huge_numbers_are_a_400_naming_the_field(service, started_job, images, broker):
    tasks = reserve_all(started_job.pk)
    text = json.dumps([wire_result(images[0].pk, tasks[images[0].pk])])
    text = text.replace('"x1": 0.0', '"x1": 1e400', 1)
    response = service.post(url(started_job), text, content_type="application/json")
    assert response.status_code == 400, response.content
    assert "results.0.result.detections.0.bbox.x1" in response.json()["detail"]


def test_a_body_that_is_not_json_is_a_415(service, started_job, broker):
    response = service.post(url(started_job), b"results=1", content_type="text/plain")
    assert response.status_code == 415
    assert broker.llen("ml_results") == 0


def test_a_bad_result_after_good_ones_queues_nothing(service, started_job, images, broker):
    tasks = reserve_all(started_job.pk)
    body = [wire_result(image.pk, tasks[image.pk]) for image in images]
    body[-1]["result"]["detections"][0]["bbox"]["x2"] = "wide"
    response = service.post(url(started_job), body, format="json")
    assert response.status_code == 400
    assert f"results.{len(images) - 1}.result.detections.0.bbox.x2" in response.json()["detail"]
    assert broker.llen("ml_results") == 0
