"""Waiting for a job's end, as the demo, the load test and the benchmarks do."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from ami.jobs.locking import transition
from ami.jobs.states import JobStatus
from ami_lab.jobs import wait_for_job_end
from ami_lab.processes import WaitTimeout

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("final", [JobStatus.SUCCESS, JobStatus.COMPLETED_WITH_ERRORS])
def test_the_wait_returns_the_final_reading_once_another_process_ends_the_job(job, final):
    transition(job.pk, JobStatus.PENDING)
    transition(job.pk, JobStatus.STARTED)
    readings = []

    def end_job() -> None:
        transition(job.pk, final)
        connection.close()  # this thread's own connection

    ender = threading.Timer(0.3, end_job)
    ender.start()
    try:
        ended = wait_for_job_end(job.pk, timeout=10, on_progress=readings.append, interval=0.05)
    finally:
        ender.join()
    assert ended.status == final and ended.is_final
    assert readings[0].status == JobStatus.STARTED and readings[-1] == ended


def test_a_job_that_does_not_end_is_a_timeout_naming_it(job):
    with pytest.raises(WaitTimeout, match=f"job {job.pk} to end"):
        wait_for_job_end(job.pk, timeout=0.3, interval=0.05)
