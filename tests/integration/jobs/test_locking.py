"""Guarded job transitions against real PostgreSQL: the state machine, one winner among racers."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from ami.jobs.locking import transition
from ami.jobs.states import FINAL_STATES, JobStatus


@pytest.mark.django_db
def test_transition_follows_the_state_machine(job):
    assert transition(job.pk, JobStatus.STARTED)
    assert transition(job.pk, JobStatus.SUCCESS)
    assert not transition(job.pk, JobStatus.FAILURE, reason="late")
    assert not transition(job.pk, JobStatus.STARTED)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCESS
    assert job.failure_reason == ""
    assert job.started_at and job.finished_at


@pytest.mark.django_db
@pytest.mark.parametrize("final", sorted(FINAL_STATES))
def test_every_final_transition_records_when_the_job_finished(job, final):
    assert transition(job.pk, JobStatus.STARTED)
    assert transition(job.pk, final)
    job.refresh_from_db()
    assert job.status == final  # COMPLETED_WITH_ERRORS fits the column
    assert job.finished_at is not None
    assert not transition(job.pk, JobStatus.COMPLETED_WITH_ERRORS)


@pytest.mark.django_db(transaction=True)
def test_only_one_concurrent_finisher_wins(job):
    transition(job.pk, JobStatus.STARTED)
    barrier = threading.Barrier(8)
    wins: list[JobStatus] = []

    def finish(target: JobStatus) -> None:
        barrier.wait()
        try:
            if transition(job.pk, target, reason=str(target)):
                wins.append(target)
        finally:
            connection.close()

    targets = [
        JobStatus.SUCCESS,
        JobStatus.FAILURE,
        JobStatus.REVOKED,
        JobStatus.COMPLETED_WITH_ERRORS,
    ] * 2
    threads = [threading.Thread(target=finish, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(wins) == 1
    job.refresh_from_db()
    assert job.status == wins[0]
