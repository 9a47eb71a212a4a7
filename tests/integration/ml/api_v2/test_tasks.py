"""Contract: reserving tasks, `POST /api/v2/jobs/{id}/tasks/` (and the older GET)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from ami.jobs.lifecycle import cancel_job
from ami.jobs.models import Job
from ami.ml.orchestration import nats

pytestmark = pytest.mark.django_db(transaction=True)


def drain(service, job_id: int, batch_size: int) -> list[list[dict]]:
    """Pages of tasks until the server answers `{"tasks": []}`."""
    pages = []
    while True:
        response = service.post(
            f"/api/v2/jobs/{job_id}/tasks/", {"batch_size": batch_size}, format="json"
        )
        assert response.status_code == 200, response.content
        tasks = response.json()["tasks"]
        if not tasks:
            return pages
        pages.append(tasks)


def test_draining_hands_out_each_task_once_with_string_ids(
    service, started_job, images, tmp_path, settings
):
    settings.MEDIA_ROOT = tmp_path
    (tmp_path / "img").mkdir()
    for image in images:
        (tmp_path / image.path).write_bytes(b"\x89PNG fake " + str(image.pk).encode())
    Job.objects.filter(pk=started_job.pk).update(last_heartbeat_at=None)
    pages = drain(service, started_job.pk, batch_size=2)
    assert [len(page) for page in pages] == [2, 2, 1]
    assert Job.objects.get(pk=started_job.pk).last_heartbeat_at is not None
    tasks = [task for page in pages for task in page]
    for task in tasks:
        assert {"id", "image_id", "image_url", "reply_subject"} <= set(task)
        assert isinstance(task["id"], str) and isinstance(task["image_id"], str)
        assert task["reply_subject"].startswith("$JS.ACK.")
    assert sorted(int(t["image_id"]) for t in tasks) == sorted(image.pk for image in images)
    assert len({t["id"] for t in tasks}) == len(images)
    image = APIClient().get(tasks[0]["image_url"])  # no Authorization header, as clients do
    assert image.status_code == 200
    assert image.content.endswith(tasks[0]["image_id"].encode())


def test_older_clients_reserve_with_a_get(service, started_job, images):
    url = f"/api/v2/jobs/{started_job.pk}/tasks"
    first = service.get(url + "?batch=3").json()["tasks"]
    rest = service.get(url + "?batch=10").json()["tasks"]
    assert (len(first), len(rest)) == (3, 2)
    assert service.get(url + "?batch=10").json() == {"tasks": []}
    assert service.get(url + "?batch=0").status_code == 400


def test_unknown_keys_and_null_client_info_are_ignored(service, started_job):
    body = {"batch_size": 1, "client_info": None, "newer_field": True}
    response = service.post(f"/api/v2/jobs/{started_job.pk}/tasks/", body, format="json")
    assert response.status_code == 200 and len(response.json()["tasks"]) == 1


def test_a_job_not_started_has_no_tasks(service, job):
    response = service.post(f"/api/v2/jobs/{job.pk}/tasks/", {"batch_size": 5}, format="json")
    assert response.json() == {"tasks": []}


@pytest.mark.parametrize("body", [{}, {"batch_size": 0}, {"batch_size": "ten"}, [1]])
def test_a_bad_batch_size_is_a_400_and_hands_out_nothing(service, started_job, body):
    response = service.post(f"/api/v2/jobs/{started_job.pk}/tasks/", body, format="json")
    assert response.status_code == 400, response.content
    assert nats.consumer_state(started_job.pk).ack_pending == 0


def test_unknown_and_final_jobs(service, started_job):
    url = "/api/v2/jobs/{}/tasks/"
    assert service.post(url.format(999999), {"batch_size": 1}, format="json").status_code == 404
    cancel_job(started_job.pk)
    response = service.post(url.format(started_job.pk), {"batch_size": 1}, format="json")
    assert (response.status_code, response.json()) == (200, {"tasks": []})  # as upstream
