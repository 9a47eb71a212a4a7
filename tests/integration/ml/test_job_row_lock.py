"""The processing-service API never waits on the job row (the upstream incident's convoy).

An outside session holds the job row `FOR UPDATE` (as an admin action or a long finish
would); reserving tasks and posting results must still answer at once.
"""

from __future__ import annotations

import threading

import psycopg
import pytest
from rest_framework.test import APIClient

from ami.jobs.lifecycle import create_job
from ami.ml.models import ResultReceipt
from ami.ml.orchestration import nats
from tests.support.ml import reserve_all, service_client, start, wire_result

pytestmark = pytest.mark.django_db(transaction=True)

ANSWER_WITHIN = 5.0  # seconds; a request that waits on the lock waits as long as it is held


def post_in_thread(client: APIClient, path: str, body) -> tuple[threading.Thread, list]:
    answers: list = []
    thread = threading.Thread(
        target=lambda: answers.append(client.post(path, body, format="json")), daemon=True
    )
    thread.start()
    return thread, answers


def test_results_are_accepted_while_the_job_row_is_locked(
    project, pipeline, images, broker, test_database_url
):
    job = start(create_job(project, pipeline, "locked row"))
    tasks = reserve_all(job.pk)
    client = service_client("row lock service")
    batch = [wire_result(image_id, reply) for image_id, reply in tasks.items()]
    with psycopg.connect(test_database_url) as outside, outside.transaction():
        outside.execute("SELECT 1 FROM jobs_job WHERE id = %s FOR UPDATE", (job.pk,))
        thread, answers = post_in_thread(client, f"/api/v2/jobs/{job.pk}/result/", batch)
        thread.join(ANSWER_WITHIN)
        answered_under_lock = not thread.is_alive()
    thread.join(30)
    nats.delete_queue(job.pk)
    assert answered_under_lock, "the result API waited on the job row"
    assert answers[0].status_code == 200, answers[0].content
    assert ResultReceipt.objects.filter(job=job).count() == len(images)
