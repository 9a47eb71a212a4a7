"""A backlog in the result queue never turns valid results into failures.

Real NATS with a short ack wait and few deliveries, real Redis as the Celery broker: the
results are accepted by the API and queued, NATS redelivers and then gives up on every task
while they wait, the undeliverable-task check runs, and only then are the queued result
tasks executed.
"""

from __future__ import annotations

import time

import pytest

from ami.jobs.lifecycle import create_job
from ami.jobs.models import ImageTask
from ami.jobs.states import JobStatus, TaskState
from ami.ml.orchestration import nats
from ami.ml.orchestration.undeliverable import fail_undeliverable_tasks
from tests.support.ml import drain_result_queue, reserve_all, service_client, start, wire_result

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


def test_results_queued_past_the_last_delivery_are_saved_not_failed(
    project, pipeline, images, broker, settings
):
    settings.NATS_TASK_ACK_WAIT = 0.5
    settings.NATS_TASK_MAX_DELIVER = 2
    job = start(create_job(project, pipeline, "backlog"))
    tasks = reserve_all(job.pk)
    client = service_client("backlogged service")
    batch = [wire_result(image_id, reply) for image_id, reply in tasks.items()]
    response = client.post(f"/api/v2/jobs/{job.pk}/result/", batch, format="json")
    assert response.status_code == 200, response.content
    wait_until_nats_gives_up(job.pk)
    assert fail_undeliverable_tasks() == {}  # the Celery beat check, run here
    assert drain_result_queue(broker) == len(images)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCESS
    states = ImageTask.objects.filter(job=job).values_list("state", flat=True)
    assert set(states) == {TaskState.DONE}
    stage = job.stages.get(key="process")
    assert (stage.processed, stage.failed) == (len(images), 0)
