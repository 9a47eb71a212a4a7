"""A job that could never run (no pipeline, no images) is refused with a 400 saying why.

Refused at create-and-start, start and retry alike; nothing is created or queued, so no job
waits in PENDING for a start that can only fail.
"""

from __future__ import annotations

import pytest

from ami.jobs.lifecycle import create_job
from ami.jobs.locking import transition
from ami.jobs.models import Job
from ami.jobs.states import JobStatus

pytestmark = pytest.mark.django_db


def test_create_and_start_without_pipeline_or_images_is_a_400_naming_both(member_client, project):
    response = member_client.post(
        "/api/jobs/", {"project": project.pk, "name": "hopeless", "start": True}, format="json"
    )
    assert response.status_code == 400, response.content
    body = response.json()
    assert "pipeline" in body["pipeline"] and "no images" in body["params"]
    assert not Job.objects.exists()


def test_create_and_start_with_bad_params_is_a_400(member_client, project, pipeline, images):
    response = member_client.post(
        "/api/jobs/",
        {
            "project": project.pk,
            "pipeline": pipeline.pk,
            "name": "x",
            "start": True,
            "params": {"limit": "ten"},
        },
        format="json",
    )
    assert response.status_code == 400, response.content
    assert "params.limit" in response.json()["params"]
    assert not Job.objects.exists()


def test_start_of_a_job_without_pipeline_is_a_400_and_it_stays_created(
    member_client, project, images
):
    job = create_job(project, None, "no pipeline")
    response = member_client.post(f"/api/jobs/{job.pk}/start")
    assert response.status_code == 400, response.content
    assert "pipeline" in response.json()
    job.refresh_from_db()
    assert job.status == JobStatus.CREATED


def test_start_of_a_job_selecting_no_images_is_a_400(member_client, project, pipeline, images):
    job = create_job(project, pipeline, "none of these", {"image_ids": [10**9]})
    response = member_client.post(f"/api/jobs/{job.pk}/start")
    assert response.status_code == 400, response.content
    assert "no images" in response.json()["params"]


def test_retry_of_a_job_without_pipeline_is_a_400_and_creates_nothing(
    member_client, project, images
):
    failed = create_job(project, None, "no pipeline")
    transition(failed.pk, JobStatus.FAILURE)
    for _ in range(3):
        response = member_client.post(f"/api/jobs/{failed.pk}/retry")
        assert response.status_code == 400, response.content
        assert "pipeline" in response.json()
    assert list(Job.objects.values_list("pk", flat=True)) == [failed.pk]
