"""The server-rendered pages: sign-in, the jobs list and one job's page."""

from __future__ import annotations

import pytest
from django.test import Client

from ami.jobs.lifecycle import create_job
from ami.main.models import Project

pytestmark = pytest.mark.django_db


def test_pages_need_a_signed_in_user(staged_job):
    for url in ("/jobs/", f"/jobs/{staged_job.pk}/"):
        response = Client().get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=")
    assert Client().get("/accounts/login/").status_code == 200


def test_sign_in_then_see_own_jobs_only(member, staged_job, pipeline):
    create_job(Project.objects.create(name="Elsewhere"), pipeline, "Hidden job")
    client = Client()
    response = client.post(
        "/accounts/login/", {"username": "member", "password": "pw-member", "next": "/jobs/"}
    )
    assert response.status_code == 302
    page = client.get("/jobs/").content.decode()
    assert "Staged job" in page
    assert "Hidden job" not in page


def test_job_page_has_stages_and_log_viewer(member_client, client_for, outsider, staged_job):
    page = member_client.get(f"/jobs/{staged_job.pk}/").content.decode()
    for stage in ("collect", "process", "results"):
        assert f'data-stage="{stage}"' in page
    assert 'id="log"' in page
    assert "jobs/job_detail.js" in page
    assert client_for(outsider).get(f"/jobs/{staged_job.pk}/").status_code == 404


def test_page_assets_are_served(member_client):
    for path in ("/static/jobs/job_detail.js", "/static/jobs/jobs.css"):
        response = Client().get(path)
        assert response.status_code == 200, path
        assert b"".join(response.streaming_content)
