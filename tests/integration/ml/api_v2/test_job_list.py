"""Contract: the job poll, `GET /api/v2/jobs`, with every filter clients send."""

from __future__ import annotations

import pytest

from ami.jobs.lifecycle import create_job
from ami.jobs.locking import transition
from ami.jobs.states import JobStatus
from ami.ml.models import Pipeline

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def jobs(project, pipeline):
    other = Pipeline.objects.create(slug="other-pipeline", name="Other")
    running = create_job(project, pipeline, "running")
    done = create_job(project, pipeline, "done")
    transition(done.pk, JobStatus.STARTED)
    transition(done.pk, JobStatus.SUCCESS)
    elsewhere = create_job(project, other, "other pipeline")
    return {"running": running, "done": done, "other": elsewhere}


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["results"]]


def test_newest_client_poll(service, jobs):
    url = (
        "/api/v2/jobs?pipeline__slug__in=test-pipeline,missing&ids_only=1"
        "&incomplete_only=1&dispatch_mode=async_api"
    )
    body = service.get(url).json()
    assert body["results"] == [{"id": jobs["running"].pk, "pipeline_slug": "test-pipeline"}]
    assert service.get(url.replace("/jobs?", "/jobs/?")).json() == body


def test_older_client_polls(service, jobs):
    older = "/api/v2/jobs?pipeline__slug=other-pipeline&ids_only=1&incomplete_only=1"
    assert ids(service.get(older + "&backend=async_api")) == [jobs["other"].pk]
    assert ids(service.get(older + "&processing_service_name=box")) == [jobs["other"].pk]
    assert ids(service.get(older + "&dispatch_mode=sync_api")) == []


def test_full_items_and_paging(service, jobs):
    body = service.get("/api/v2/jobs/?limit=2").json()
    assert body["count"] == 3 and body["next"] and body["previous"] is None
    first = body["results"][0]
    assert first["id"] == jobs["running"].pk and first["pipeline_slug"] == "test-pipeline"
    assert first["dispatch_mode"] == "async_api" and first["status"] == "CREATED"
    rest = service.get("/api/v2/jobs/?limit=2&offset=2").json()
    assert [item["id"] for item in rest["results"]] == [jobs["other"].pk]
    assert ids(service.get("/api/v2/jobs?incomplete_only=0")) == sorted(j.pk for j in jobs.values())


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("ids_only=maybe", "ids_only"),
        ("incomplete_only=2", "incomplete_only"),
        ("pipeline__slug__in=a%00b", "pipeline__slug__in"),
        ("pipeline__slug=" + "a" * 101, "pipeline__slug"),
        ("limit=0", "limit"),
        ("limit=%C2%B2", "limit"),
        ("offset=-1", "offset"),
        ("project=" + "9" * 30, "project"),
        ("dispatch_mode=%00", "dispatch_mode"),
    ],
)
def test_a_malformed_parameter_is_a_400_naming_it(service, jobs, query, name):
    response = service.get(f"/api/v2/jobs?{query}")
    assert response.status_code == 400, response.content
    assert name in response.json()


def test_a_job_completed_with_errors_is_final_like_success(service, project, pipeline):
    running = create_job(project, pipeline, "running")
    finished = create_job(project, pipeline, "finished, some images failed")
    transition(finished.pk, JobStatus.STARTED)
    transition(finished.pk, JobStatus.COMPLETED_WITH_ERRORS)
    assert ids(service.get("/api/v2/jobs?incomplete_only=1")) == [running.pk]
    items = service.get("/api/v2/jobs?incomplete_only=0").json()["results"]
    assert [(item["id"], item["status"]) for item in items] == [
        (running.pk, "CREATED"),
        (finished.pk, "COMPLETED_WITH_ERRORS"),  # reported as is, like every other status
    ]
