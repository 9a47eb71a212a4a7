"""`ami worker` adds a line to the job's log per batch, attributed to its service."""

from __future__ import annotations

import pytest

from ami.jobs.lifecycle import create_job, start_job
from ami.jobs.models import JobLog
from ami.jobs.states import JobStatus
from tests.support.polling import wait_until

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def test_the_worker_logs_each_batch_as_its_service(stack, demo_project):
    project, pipeline = demo_project
    stack.celery("celery", "jobs,ml_results")
    job = create_job(project, pipeline, "worker logs", {"limit": 8})
    start_job(job.pk)
    stack.worker("worker", job, "--batch", "4")

    def ended():
        job.refresh_from_db()
        return job.is_final

    wait_until(ended, "the job to finish")
    assert job.status == JobStatus.SUCCESS, job.failure_reason
    logged = JobLog.objects.filter(job=job, context__has_key="processing_service_id")
    # The worker posts a batch's line after its results: the job may end first.
    wait_until(lambda: logged.count() == 2, "the worker's second line")
    lines = list(logged)
    assert sorted(line.message for line in lines) == [
        "Posted batch 1: 4 results (0 failed)",
        "Posted batch 2: 4 results (0 failed)",
    ]
    assert all(line.context["processing_service"] for line in lines)
