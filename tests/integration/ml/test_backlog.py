"""A backlog in the result queue never turns valid results into failures.

Real NATS with a short ack wait and few deliveries, real Redis as the Celery broker: the
results are accepted by the API and queued, NATS redelivers and then gives up on every task
while they wait, the undeliverable-task check runs, and only then are the queued result
tasks executed.
"""

from __future__ import annotations

import base64
import json
import time

import pytest
from rest_framework.test import APIClient

from ami.jobs.lifecycle import create_job
from ami.jobs.models import ImageTask
from ami.jobs.states import JobStatus, TaskState
from ami.ml.models import ProcessingService
from ami.ml.orchestration import nats
from ami.ml.orchestration.undeliverable import fail_undeliverable_tasks
from ami.ml.tasks import process_nats_pipeline_result
from tests.integration.ml.conftest import make_result, reserve_all, start

pytestmark = pytest.mark.django_db(transaction=True)

GIVE_UP_WITHIN = 20.0  # seconds for NATS to exhaust every task's deliveries


def wait_until_nats_gives_up(job_id: int) -> None:
    """Pull as processing services would until NATS delivers nothing and awaits no ack."""
    deadline = time.monotonic() + GIVE_UP_WITHIN
    while True:
        nats.reserve(job_id, 100)
        state = nats.consumer_state(job_id)
        if state.pending == 0 and state.ack_pending == 0:
            return
        assert time.monotonic() < deadline, state
        time.sleep(0.2)


def drain_result_queue(broker) -> int:
    """Execute every queued `process_nats_pipeline_result`, as a late Celery worker would."""
    executed = 0
    while raw := broker.rpop("ml_results"):
        message = json.loads(raw)
        args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        process_nats_pipeline_result(*args, **kwargs)
        executed += 1
    return executed


def test_results_queued_past_the_last_delivery_are_saved_not_failed(
    project, pipeline, images, broker, settings
):
    settings.NATS_TASK_ACK_WAIT = 0.5
    settings.NATS_TASK_MAX_DELIVER = 2
    job = start(create_job(project, pipeline, "backlog"))
    tasks = reserve_all(job.pk)
    _, token = ProcessingService.create_with_token("backlogged service")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    batch = [make_result(image_id, reply) for image_id, reply in tasks.items()]
    response = client.post(f"/api/jobs/{job.pk}/result", batch, format="json")
    assert response.status_code == 202, response.content
    wait_until_nats_gives_up(job.pk)
    assert fail_undeliverable_tasks() == {}  # the Celery beat check, run here
    assert drain_result_queue(broker) == len(images)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCESS
    states = ImageTask.objects.filter(job=job).values_list("state", flat=True)
    assert set(states) == {TaskState.DONE}
    stage = job.stages.get(key="process")
    assert (stage.processed, stage.failed) == (len(images), 0)
