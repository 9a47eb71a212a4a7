"""Contract: a processing service adds lines to a job's log, `POST /api/v2/jobs/{id}/logs/`."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from ami.ml.api.service_logs import MAX_LOG_POST_BYTES
from ami.ml.api.wire import MAX_LOG_LINES_PER_POST, MAX_LOG_MESSAGE_LENGTH
from ami.ml.models import ProcessingService
from tests.support.hostile import NUMBERS, STRINGS, deep_json_text
from tests.support.logs import LOGS_DB

pytestmark = LOGS_DB


@pytest.fixture
def sender(project) -> tuple[ProcessingService, APIClient]:
    service, key = ProcessingService.create_with_key("log service")
    service.projects.add(project)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return service, api


def url(job) -> str:
    return f"/api/v2/jobs/{job.pk}/logs/"


def test_lines_are_logged_attributed_to_the_service(sender, job, member_client):
    service, api = sender
    body = {
        "logs": [
            {"level": "INFO", "message": "loaded model v3", "context": {"batch": 4}},
            {"level": 40, "message": "image 7: CUDA out of memory",
             "timestamp": "2026-11-29T10:00:00Z"},
            {"level": "warn", "message": "slow download"},
        ]
    }  # fmt: skip
    response = api.post(url(job), body, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "accepted", "job_id": job.pk, "lines_logged": 3}
    page = member_client.get(f"/api/jobs/{job.pk}/logs?processing_service={service.pk}").json()
    rows = {row["message"]: row for row in page["results"]}
    assert set(rows) == {"loaded model v3", "image 7: CUDA out of memory", "slow download"}
    error = rows["image 7: CUDA out of memory"]
    assert error["level"] in ("ERROR", 40)
    assert error["context"]["processing_service_id"] == service.pk
    assert error["context"]["processing_service"] == "log service"
    assert error["context"]["service_timestamp"].startswith("2026-11-29T10:00:00")
    assert rows["loaded model v3"]["context"]["batch"] == 4


def test_a_service_cannot_pose_as_another(sender, job, member_client):
    service, api = sender
    line = {"message": "hi", "context": {"processing_service_id": 999, "processing_service": "x"}}
    assert api.post(url(job), {"logs": [line]}, format="json").status_code == 200
    [row] = member_client.get(f"/api/jobs/{job.pk}/logs").json()["results"]
    assert row["context"]["processing_service_id"] == service.pk


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"logs": []}, "logs"),
        ({}, "logs"),
        ({"logs": [{"message": "x"}] * (MAX_LOG_LINES_PER_POST + 1)}, "logs"),
        ({"logs": [{"message": "x" * (MAX_LOG_MESSAGE_LENGTH + 1)}]}, "logs.0.message"),
        ({"logs": [{"message": STRINGS["nul"]}]}, "logs.0.message"),
        ({"logs": [{"message": STRINGS["lone_high_surrogate"]}]}, "logs.0.message"),
        ({"logs": [{"message": STRINGS["control_chars"]}]}, "logs.0.message"),
        ({"logs": [{"message": ""}]}, "logs.0.message"),
        ({"logs": [{"message": "x", "level": "LOUD"}]}, "logs.0.level"),
        ({"logs": [{"message": "x", "level": 99}]}, "logs.0.level"),
        ({"logs": [{"message": "x", "level": True}]}, "logs.0.level"),
        ({"logs": [{"message": "x", "timestamp": "yesterday"}]}, "logs.0.timestamp"),
        ({"logs": [{"message": "x", "context": {"a": "\x00"}}]}, "logs.0.context"),
        ({"logs": [{"message": "x", "context": {"a": "y" * 20_000}}]}, "logs.0.context"),
        ({"logs": [{"message": "x", "context": "text"}]}, "logs.0.context"),
        ({"logs": "x"}, "logs"),
    ],
)
def test_hostile_lines_are_a_400_naming_the_field(sender, job, body, field):
    _, api = sender
    text = json.dumps(body)  # escaped: lone surrogates travel as `\\ud800`
    response = api.post(url(job), text, content_type="application/json")
    assert response.status_code == 400, response.content
    assert field in [error["field"] for error in response.json()["errors"]]


@pytest.mark.parametrize("name", ["nan", "infinity", "ten_pow_100"])
def test_hostile_numbers_are_a_400(sender, job, name):
    _, api = sender
    value = NUMBERS[name]
    text = json.dumps({"logs": [{"message": "x", "level": value, "context": {"n": value}}]})
    response = api.post(url(job), text, content_type="application/json")
    assert response.status_code == 400, response.content


def test_deep_json_and_bad_bodies_are_a_400(sender, job):
    _, api = sender
    deep = api.post(url(job), deep_json_text(), content_type="application/json")
    assert deep.status_code == 400
    broken = api.post(url(job), b'{"logs": [', content_type="application/json")
    assert broken.status_code == 400
    invalid_utf8 = api.post(url(job), b'{"logs": "\xff"}', content_type="application/json")
    assert invalid_utf8.status_code == 400


def test_a_huge_post_is_a_413_naming_the_limit(sender, job):
    _, api = sender
    text = json.dumps({"logs": [{"message": "x" * 9_000}] * 300})
    response = api.post(url(job), text, content_type="application/json")
    assert response.status_code == 413
    assert str(MAX_LOG_POST_BYTES) in response.json()["detail"]


def test_unknown_jobs_and_user_sessions_are_refused(sender, job, member_client):
    _, api = sender
    line = {"logs": [{"message": "x"}]}
    assert api.post("/api/v2/jobs/999999/logs/", line, format="json").status_code == 404
    assert member_client.post(url(job), line, format="json").status_code in (401, 403)
    assert APIClient().post(url(job), line, format="json").status_code in (401, 403)


@override_settings(SERVICE_LOG_RATE="3/min")
def test_posts_over_the_rate_are_a_429_with_retry_after(sender, job):
    service, api = sender
    other, other_key = ProcessingService.create_with_key("another log service")
    other.projects.add(job.project)
    # Distinct messages: repeats would leave a pending "repeated" line to the next test.
    posts = ({"logs": [{"message": f"progress {i}"}]} for i in range(10))
    statuses = [api.post(url(job), next(posts), format="json").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = api.post(url(job), next(posts), format="json")
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 60
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {other_key}")  # the rate is per service
    assert api.post(url(job), next(posts), format="json").status_code == 200
