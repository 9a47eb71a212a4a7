"""Properties of the job state machine over random sequences of attempted transitions."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ami.jobs.states import FINAL_STATES, JobStatus, can_transition

attempts = st.lists(st.sampled_from(list(JobStatus)), max_size=30)


def run(attempted: list[JobStatus]) -> list[JobStatus]:
    """The statuses a job goes through when each attempt is applied only if allowed."""
    path = [JobStatus.CREATED]
    for target in attempted:
        if can_transition(path[-1], target):
            path.append(target)
    return path


@given(attempts)
def test_a_final_state_is_never_left(attempted):
    path = run(attempted)
    for i, status in enumerate(path):
        if status in FINAL_STATES:
            assert path[i:] == [status]


@given(attempts)
def test_success_and_completed_with_errors_are_reached_only_from_started(attempted):
    path = run(attempted)
    for before, after in zip(path, path[1:], strict=False):
        if after in (JobStatus.SUCCESS, JobStatus.COMPLETED_WITH_ERRORS):
            assert before == JobStatus.STARTED


@given(attempts)
def test_a_job_ends_at_most_once(attempted):
    path = run(attempted)
    assert sum(status in FINAL_STATES for status in path) <= 1


@given(attempts)
def test_no_status_is_entered_twice_and_created_never_again(attempted):
    path = run(attempted)
    assert len(path) == len(set(path))
    assert JobStatus.CREATED not in path[1:]


@given(st.sampled_from(list(JobStatus)), st.sampled_from(list(JobStatus)))
def test_no_self_transition(source, target):
    if source == target:
        assert not can_transition(source, target)
