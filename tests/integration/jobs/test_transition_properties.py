"""`locking.transition` on real rows matches the state machine, and one finisher wins.

Random sequences of attempted transitions run against a real job row and are compared with
`states.can_transition`; concurrent finishers race on real, separate connections.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ami.jobs.locking import transition
from ami.jobs.models import Job
from ami.jobs.states import FINAL_STATES, JobStatus, can_transition

pytestmark = pytest.mark.django_db(transaction=True)

FINAL = sorted(FINAL_STATES)
DB_EXAMPLES = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@DB_EXAMPLES
@given(attempted=st.lists(st.sampled_from(list(JobStatus)), max_size=12))
def test_transitions_on_a_real_row_follow_the_state_machine(project, pipeline, attempted):
    job = Job.objects.create(project=project, pipeline=pipeline, name="random walk")
    expected = JobStatus.CREATED
    for target in attempted:
        allowed = can_transition(expected, target)
        assert transition(job.pk, target) == allowed, (expected, target)
        if allowed:
            expected = target
        assert Job.objects.get(pk=job.pk).status == expected


def race(job_id: int, targets: list[JobStatus]) -> list[bool]:
    """Each target tried at once by its own thread and connection; who moved the job."""
    barrier = threading.Barrier(len(targets))
    outcomes: list[bool | BaseException] = [False] * len(targets)

    def finisher(i: int) -> None:
        try:
            connection.ensure_connection()
            barrier.wait()
            outcomes[i] = transition(job_id, targets[i], reason=f"finisher {i}")
        except BaseException as exc:  # re-raised below, in the test's thread
            outcomes[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=finisher, args=(i,)) for i in range(len(targets))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return outcomes


@DB_EXAMPLES
@given(
    start=st.sampled_from([JobStatus.PENDING, JobStatus.STARTED]),
    targets=st.lists(st.sampled_from(FINAL), min_size=2, max_size=6),
)
def test_of_concurrent_finishers_exactly_one_wins(project, pipeline, start, targets):
    job = Job.objects.create(project=project, pipeline=pipeline, name="race", status=start)
    outcomes = race(job.pk, targets)
    winners = [target for target, won in zip(targets, outcomes, strict=True) if won]
    allowed = [target for target in targets if can_transition(start, target)]
    assert len(winners) == (1 if allowed else 0)
    job.refresh_from_db()
    if winners:
        assert job.status == winners[0]
        assert job.failure_reason == f"finisher {outcomes.index(True)}"
    else:
        assert job.status == start
