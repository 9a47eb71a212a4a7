"""The processing-service API: token auth, reserving tasks, posting results, images."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from ami.jobs.lifecycle import cancel_job
from ami.jobs.models import Job
from ami.ml.models import ProcessingService
from tests.integration.ml.conftest import make_result, reserve_all

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def client() -> APIClient:
    _, token = ProcessingService.create_with_token("test service")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api


def queued(broker) -> int:
    return broker.llen("ml_results")


def test_tasks_need_a_processing_service_token(started_job):
    url = f"/api/jobs/{started_job.pk}/tasks"
    assert APIClient().post(url, {"batch": 2}, format="json").status_code == 401
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    response = bad.post(url, {"batch": 2}, format="json")
    assert response.status_code == 401
    assert "token" in response.json()["detail"]


def test_reserve_hands_out_each_task_once_with_a_downloadable_image(
    client, started_job, images, tmp_path, settings
):
    settings.MEDIA_ROOT = tmp_path
    (tmp_path / "img").mkdir()
    for image in images:
        (tmp_path / image.path).write_bytes(b"\x89PNG fake " + str(image.pk).encode())
    url = f"/api/jobs/{started_job.pk}/tasks"
    Job.objects.filter(pk=started_job.pk).update(last_heartbeat_at=None)
    first = client.post(url, {"batch": 3}, format="json").json()
    assert Job.objects.get(pk=started_job.pk).last_heartbeat_at is not None
    second = client.post(url, {"batch": 10}, format="json").json()
    assert (len(first["tasks"]), len(second["tasks"])) == (3, 2)
    tasks = first["tasks"] + second["tasks"]
    assert sorted(t["image_id"] for t in tasks) == sorted(image.pk for image in images)
    assert client.post(url, {"batch": 10}, format="json").json()["tasks"] == []
    task = tasks[0]
    image = APIClient().get(task["image_url"])
    assert image.status_code == 200
    assert image.content.endswith(str(task["image_id"]).encode())
    assert APIClient().get(task["image_url"] + "x").status_code == 404


def test_reserve_answers_clearly_for_bad_batch_unknown_and_final_jobs(client, started_job):
    response = client.post(f"/api/jobs/{started_job.pk}/tasks", {"batch": 0}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "batch"
    assert client.post("/api/jobs/999999/tasks", {}, format="json").status_code == 404
    cancel_job(started_job.pk)
    response = client.post(f"/api/jobs/{started_job.pk}/tasks", {}, format="json")
    assert response.status_code == 410
    assert response.json()["status"] == "REVOKED"


def test_results_are_queued_one_task_each(client, started_job, images, broker):
    tasks = reserve_all(started_job.pk)
    batch = [make_result(image.pk, tasks[image.pk]) for image in images[:3]]
    response = client.post(f"/api/jobs/{started_job.pk}/result", batch, format="json")
    assert response.status_code == 202, response.json()
    assert response.json() == {"queued": 3}
    assert queued(broker) == 3


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: r["detections"][0]["bbox"].update(x2="wide"), "results.1.detections.0.bbox.x2"),
        (lambda r: r["detections"][1]["bbox"].update(x2=1.0), "results.1.detections.1.bbox"),
        (lambda r: r["detections"][0].update(score=3), "results.1.detections.0.score"),
        (lambda r: r.update(colour="red"), "results.1.colour"),
        (lambda r: r.pop("image_id"), "results.1.image_id"),
        (lambda r: r.update(image_id=987654), "results.1.image_id"),
        (lambda r: r.update(reply_subject="$JS.ACK.other"), "results.1.reply_subject"),
        (lambda r: r["detections"][1].update(algorithm="nope"), "results.1.detections.1.algorithm"),
        (lambda r: r.update(error="both"), "results.1"),
    ],
)
def test_malformed_batch_is_a_400_naming_the_field_and_queues_nothing(
    client, started_job, images, broker, mutate, field
):
    tasks = reserve_all(started_job.pk)
    batch = [make_result(image.pk, tasks[image.pk]) for image in images[:2]]
    mutate(batch[1])
    response = client.post(f"/api/jobs/{started_job.pk}/result", batch, format="json")
    assert response.status_code == 400
    assert field in [error["field"] for error in response.json()["errors"]]
    assert field in response.json()["detail"]
    assert queued(broker) == 0


def test_results_for_unknown_or_final_jobs_are_refused(client, started_job, images, broker):
    tasks = reserve_all(started_job.pk)
    batch = [make_result(images[0].pk, tasks[images[0].pk])]
    assert client.post("/api/jobs/999999/result", batch, format="json").status_code == 404
    empty = client.post(f"/api/jobs/{started_job.pk}/result", [], format="json")
    assert empty.status_code == 400
    cancel_job(started_job.pk)
    assert (
        client.post(f"/api/jobs/{started_job.pk}/result", batch, format="json").status_code == 410
    )
    assert queued(broker) == 0
