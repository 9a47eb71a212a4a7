"""Services see only their projects' jobs; keys rotate with a window, and revoke."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone

from ami.jobs.lifecycle import create_job
from ami.jobs.models import Job
from ami.main.models import Project
from ami.ml.api.throttling import ServiceRateThrottle
from ami.ml.models import ProcessingService
from tests.support.ml import keyed_client, service_client, wire_result

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def own_job(project, pipeline) -> Job:
    return create_job(project, pipeline, "ours")


@pytest.fixture
def foreign_job(pipeline) -> Job:
    return create_job(Project.objects.create(name="Other project"), pipeline, "theirs")


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["results"]]


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("create_processing_service", *args, stdout=out)
    return out.getvalue().strip()


def test_a_service_lists_only_its_projects_and_their_jobs(service, project, own_job, foreign_job):
    assert ids(service.get("/api/v2/jobs")) == [own_job.pk]
    assert ids(service.get(f"/api/v2/jobs?project={foreign_job.project_id}")) == []
    assert ids(service.get("/api/v2/projects/")) == [project.pk]


def test_another_projects_job_is_a_404_everywhere(service, foreign_job):
    job_id = foreign_job.pk
    reserve = service.post(f"/api/v2/jobs/{job_id}/tasks/", {"batch_size": 1}, format="json")
    assert reserve.status_code == 404
    assert service.get(f"/api/v2/jobs/{job_id}/tasks?batch=1").status_code == 404
    body = {"results": [wire_result(1, "$JS.ACK.x.y.1")]}
    assert service.post(f"/api/v2/jobs/{job_id}/result/", body, format="json").status_code == 404
    missing = Job.objects.order_by("-pk").first().pk + 1000
    unknown = service.post(f"/api/v2/jobs/{missing}/result/", body, format="json")
    foreign = service.post(f"/api/v2/jobs/{job_id}/result/", body, format="json")
    assert unknown.status_code == foreign.status_code == 404
    assert foreign.json()["detail"] == f"job {job_id} does not exist"


def test_registering_with_another_project_is_a_404(service, foreign_job):
    url = f"/api/v2/projects/{foreign_job.project_id}/pipelines/"
    response = service.post(url, {"pipelines": []}, format="json")
    assert response.status_code == 404


def test_a_service_of_no_project_sees_nothing(own_job):
    lonely = service_client("lonely", projects=[])
    assert ids(lonely.get("/api/v2/jobs")) == []
    assert ids(lonely.get("/api/v2/projects/")) == []
    url = f"/api/v2/jobs/{own_job.pk}/tasks/"
    assert lonely.post(url, {"batch_size": 1}, format="json").status_code == 404


def test_rotation_keeps_both_keys_valid_until_the_old_is_revoked(project, own_job):
    old_key = run("gpu box", "--project", project.name)
    new_key = run("gpu box", "--rotate")
    old, new = keyed_client(old_key), keyed_client(new_key)
    assert ids(old.get("/api/v2/jobs")) == ids(new.get("/api/v2/jobs")) == [own_job.pk]
    assert run("gpu box", "--revoke-old") == ""
    assert old.get("/api/v2/jobs").status_code == 401
    assert ids(new.get("/api/v2/jobs")) == [own_job.pk]


def test_the_old_key_stops_working_when_its_window_ends(project):
    old_key = run("gpu box", "--project", project.name)
    new_key = run("gpu box", "--rotate", "--window", "1")
    service = ProcessingService.objects.get(name="gpu box")
    assert timedelta(minutes=59) < service.previous_key_expires_at - timezone.now()
    ProcessingService.objects.filter(pk=service.pk).update(
        previous_key_expires_at=timezone.now() - timedelta(seconds=1)
    )
    expired = keyed_client(old_key).get("/api/v2/jobs")
    assert expired.status_code == 401
    assert expired.json()["detail"] == "Unknown processing-service API key"
    assert keyed_client(new_key).get("/api/v2/jobs").status_code == 200


def test_a_revoked_service_is_refused_with_either_key(project):
    old_key = run("gpu box", "--project", project.name)
    new_key = run("gpu box", "--rotate")
    ProcessingService.objects.filter(name="gpu box").update(is_active=False)
    for key in (old_key, new_key):
        response = keyed_client(key).get("/api/v2/jobs")
        assert response.status_code == 401
        assert "revoked" in response.json()["detail"]


def test_the_command_attaches_projects_and_explains_bad_names(project):
    run("gpu box", "--project", project.name)
    assert list(ProcessingService.objects.get(name="gpu box").projects.all()) == [project]
    with pytest.raises(CommandError, match="no project named"):
        run("gpu box", "--project", "nope")
    with pytest.raises(CommandError, match="no processing service named"):
        run("nobody", "--rotate")


def test_a_service_over_its_rate_gets_429_with_retry_after(service, monkeypatch):
    scope = f"service-test-{uuid.uuid4().hex}"  # a cache key of its own: never clear the cache
    monkeypatch.setattr(ServiceRateThrottle, "scope", scope)
    monkeypatch.setattr(ServiceRateThrottle, "THROTTLE_RATES", {scope: "3/min"})
    statuses = [service.get("/api/v2/jobs").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = service.get("/api/v2/projects/")
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    other = service_client("another service")  # counted apart
    assert other.get("/api/v2/jobs").status_code == 200


def test_the_admin_rotates_a_key_and_ends_the_rotation(project, client_for, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    old_key = run("gpu box", "--project", project.name)
    service = ProcessingService.objects.get(name="gpu box")
    admin = client_for(get_user_model().objects.create_superuser("admin", password=None))
    url = "/admin/ml/processingservice/"
    selected = {"_selected_action": [service.pk]}
    response = admin.post(url, {"action": "rotate_api_key", **selected}, follow=True)
    [message] = [str(m) for m in response.context["messages"]]
    new_key = message.rsplit(": ", 1)[1]
    assert keyed_client(old_key).get("/api/v2/jobs").status_code == 200
    assert keyed_client(new_key).get("/api/v2/jobs").status_code == 200
    admin.post(url, {"action": "revoke_previous_key", **selected})
    assert keyed_client(old_key).get("/api/v2/jobs").status_code == 401
    assert keyed_client(new_key).get("/api/v2/jobs").status_code == 200
