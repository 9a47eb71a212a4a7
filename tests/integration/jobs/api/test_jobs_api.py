"""The jobs API: list, detail, create, actions, and who may see what."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from ami.jobs.lifecycle import create_job
from ami.jobs.locking import transition
from ami.jobs.models import Job
from ami.jobs.states import JobStatus
from ami.main.models import Project
from tests.support.logs import add_lines

pytestmark = pytest.mark.django_db


def test_list_shows_only_jobs_of_the_users_projects(member_client, staged_job, pipeline):
    other = Project.objects.create(name="Other")
    create_job(other, pipeline, "Not yours")
    body = member_client.get("/api/jobs/").json()
    assert [job["id"] for job in body["results"]] == [staged_job.pk]
    assert body["count"] == 1
    stages = body["results"][0]["stages"]
    assert [stage["key"] for stage in stages] == ["collect", "process", "results"]
    assert {"total", "processed", "failed", "detections", "classifications", "progress"} <= set(
        stages[0]
    )
    assert "logs" not in body["results"][0]


def test_list_filters(member_client, project, pipeline, staged_job):
    second = create_job(project, None, "No pipeline")
    transition(second.pk, JobStatus.REVOKED)

    def ids(query: str) -> list[int]:
        response = member_client.get(f"/api/jobs/?{query}")
        assert response.status_code == 200, response.content
        return [job["id"] for job in response.json()["results"]]

    assert ids(f"project={project.pk}") == [second.pk, staged_job.pk]
    assert ids(f"pipeline={pipeline.pk}") == [staged_job.pk]
    assert ids("status=REVOKED") == [second.pk]
    assert ids("status=CREATED") == [staged_job.pk]


@pytest.mark.parametrize(
    ("query", "field"),
    [("status=DONE", "status"), ("project=abc", "project"), ("pipeline=-1", "pipeline")],
)
def test_list_rejects_bad_filters(member_client, staged_job, query, field):
    response = member_client.get(f"/api/jobs/?{query}")
    assert response.status_code == 400
    assert field in response.json()


def test_list_makes_no_per_row_log_query(member_client, project, pipeline):
    def list_queries(job_count: int) -> list[str]:
        while Job.objects.count() < job_count:
            add_lines(create_job(project, pipeline, "job"), 3)
        with CaptureQueriesContext(connection) as captured:
            assert member_client.get("/api/jobs/?limit=100").status_code == 200
        return [query["sql"] for query in captured.captured_queries]

    few, many = list_queries(2), list_queries(25)
    assert len(few) == len(many)
    assert not [sql for sql in many if "jobs_joblog" in sql]


def test_list_query_count_is_bounded(
    member_client, project, pipeline, django_assert_max_num_queries
):
    for i in range(30):
        create_job(project, pipeline, f"job {i}")
    with django_assert_max_num_queries(8):
        response = member_client.get("/api/jobs/?limit=100")
    assert len(response.json()["results"]) == 30


def test_a_job_completed_with_errors_shows_its_image_counts(member_client, staged_job):
    transition(staged_job.pk, JobStatus.STARTED)
    staged_job.stages.filter(key="process").update(total=742, processed=739, failed=3)
    staged_job.stages.filter(key="results").update(total=742, processed=700, failed=1)
    assert transition(staged_job.pk, JobStatus.COMPLETED_WITH_ERRORS)
    listed = member_client.get("/api/jobs/?status=COMPLETED_WITH_ERRORS").json()["results"]
    assert [job["id"] for job in listed] == [staged_job.pk]
    detail = member_client.get(f"/api/jobs/{staged_job.pk}/").json()
    for job in (listed[0], detail):
        assert (job["status"], job["is_final"]) == ("COMPLETED_WITH_ERRORS", True)
        assert job["images"] == {"total": 742, "processed": 739, "failed": 3}  # process stage
        assert job["finished_at"] is not None


def test_detail_has_stages_counters_and_legacy_logs(member_client, staged_job):
    add_lines(staged_job, 12)
    body = member_client.get(f"/api/jobs/{staged_job.pk}/").json()
    assert body["params"] == {"limit": 5}
    assert len(body["stages"]) == 3
    assert len(body["logs"]["stdout"]) == 12
    assert body["logs"]["stdout"][0].endswith("line 11")  # newest first
    assert [line.split()[-1] for line in body["logs"]["stderr"]] == ["9", "4"]


def test_detail_logs_limit(member_client, staged_job):
    add_lines(staged_job, 30)
    url = f"/api/jobs/{staged_job.pk}/"
    assert len(member_client.get(url).json()["logs"]["stdout"]) == 30
    assert len(member_client.get(f"{url}?logs_limit=7").json()["logs"]["stdout"]) == 7
    assert member_client.get(f"{url}?logs_limit=0").json()["logs"] == {"stdout": [], "stderr": []}
    assert member_client.get(f"{url}?logs_limit=5000").status_code == 200
    for bad in ("5001", "-1", "ten", "1.5"):
        response = member_client.get(f"{url}?logs_limit={bad}")
        assert response.status_code == 400, bad
        assert "logs_limit" in response.json()


def test_create_job(member_client, project, pipeline):
    response = member_client.post(
        "/api/jobs/",
        {"project": project.pk, "pipeline": pipeline.pk, "name": "Run", "params": {"limit": 3}},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    job = Job.objects.get(pk=body["id"])
    assert (job.project, job.pipeline, job.name, job.params) == (
        project,
        pipeline,
        "Run",
        {"limit": 3},
    )
    assert job.status == JobStatus.CREATED
    assert [stage["key"] for stage in body["stages"]] == ["collect", "process", "results"]


def test_create_job_validates(member_client, outsider, pipeline):
    foreign = outsider.projects.get()
    response = member_client.post(
        "/api/jobs/", {"project": foreign.pk, "pipeline": pipeline.pk, "name": "x"}, format="json"
    )
    assert response.status_code == 400
    assert "project" in response.json()
    response = member_client.post("/api/jobs/", {"pipeline": pipeline.pk}, format="json")
    assert set(response.json()) >= {"project", "name"}
    assert not Job.objects.exists()


def test_start_cancel_retry(member_client, staged_job, images):
    base = f"/api/jobs/{staged_job.pk}"
    response = member_client.post(f"{base}/start")
    assert response.status_code == 200
    assert response.json()["status"] == JobStatus.PENDING
    assert member_client.post(f"{base}/start").status_code == 409
    response = member_client.post(f"{base}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == JobStatus.REVOKED
    assert member_client.post(f"{base}/cancel").status_code == 409
    response = member_client.post(f"{base}/retry")
    assert response.status_code == 201
    retried = Job.objects.get(pk=response.json()["id"])
    assert retried.pk != staged_job.pk
    assert (retried.project_id, retried.pipeline_id) == (
        staged_job.project_id,
        staged_job.pipeline_id,
    )
    assert retried.status == JobStatus.PENDING


def test_basic_auth_is_accepted(staged_job, member):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Basic bWVtYmVyOnB3LW1lbWJlcg==")  # member:pw-member
    assert client.get(f"/api/jobs/{staged_job.pk}/").status_code == 200


def job_urls(job_id: int) -> list[tuple[str, str]]:
    base = f"/api/jobs/{job_id}"
    return [
        ("get", f"{base}/"),
        ("get", f"{base}/logs"),
        ("get", f"{base}/logs/stream"),
        ("get", f"{base}/logs/download"),
        ("post", f"{base}/start"),
        ("post", f"{base}/cancel"),
        ("post", f"{base}/retry"),
    ]


ANONYMOUS_URLS = ["/api/jobs/", "/api/projects/", "/api/images/", "/api/pipelines/"]


@pytest.mark.parametrize("header", [None, "Token some-processing-service-token", "Bearer x"])
def test_anonymous_and_token_requests_are_refused(staged_job, header):
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    for method, url in [*job_urls(staged_job.pk), *[("get", u) for u in ANONYMOUS_URLS]]:
        response = getattr(client, method)(url)
        assert response.status_code in (401, 403), (method, url, response.status_code)
    assert client.post("/api/jobs/", {"name": "x"}).status_code in (401, 403)
    staged_job.refresh_from_db()
    assert staged_job.status == JobStatus.CREATED


def test_other_projects_jobs_are_not_found(client_for, outsider, staged_job):
    add_lines(staged_job, 5)
    client = client_for(outsider)
    for method, url in job_urls(staged_job.pk):
        response = getattr(client, method)(url)
        assert response.status_code == 404, (method, url, response.status_code)
        assert b"line" not in response.content
    staged_job.refresh_from_db()
    assert staged_job.status == JobStatus.CREATED
    assert Job.objects.count() == 1


def test_projects_images_pipelines(member_client, client_for, outsider, project, images, pipeline):
    projects = member_client.get("/api/projects/").json()["results"]
    assert [p["id"] for p in projects] == [project.pk]
    assert member_client.get(f"/api/projects/{outsider.projects.get().pk}/").status_code == 404
    body = member_client.get(f"/api/images/?project={project.pk}").json()
    assert [image["path"] for image in body["results"]] == [image.path for image in images]
    assert member_client.get("/api/images/?project=x").status_code == 400
    assert client_for(outsider).get("/api/images/").json()["results"] == []
    assert client_for(outsider).get(f"/api/images/{images[0].pk}/").status_code == 404
    pipelines = member_client.get("/api/pipelines/").json()
    assert [p["slug"] for p in pipelines] == [pipeline.slug]
    assert {a["key"] for a in pipelines[0]["algorithms"]} == {"detector", "classifier"}


def test_schema_and_docs(member_client):
    schema = member_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {
        "/api/jobs/{id}/logs/",
        "/api/jobs/{id}/logs/stream",
        "/api/jobs/{id}/logs/download",
        "/api/jobs/",
        "/api/pipelines/",
    } <= set(paths)
    components = schema.json()["components"]["schemas"]
    assert set(components["JobImages"]["properties"]) == {"total", "processed", "failed"}
    job = components["Job"]
    assert "images" in job["required"] and job["properties"]["images"]["readOnly"]
    status = job["properties"]["status"]
    enum = components[status["allOf"][0]["$ref"].rsplit("/", 1)[-1]]["enum"]
    assert "COMPLETED_WITH_ERRORS" in enum
    assert member_client.get("/api/docs/").status_code == 200
