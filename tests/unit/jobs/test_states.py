import pytest

from ami.jobs.states import ALLOWED_TRANSITIONS, FINAL_STATES, JobStatus, can_transition, sources_of


@pytest.mark.parametrize("final", sorted(FINAL_STATES))
def test_final_states_have_no_way_out(final):
    assert all(not can_transition(final, target) for target in JobStatus)


def test_sources_of_matches_the_table():
    for target in JobStatus:
        expected = {str(src) for src, targets in ALLOWED_TRANSITIONS.items() if target in targets}
        assert set(sources_of(target)) == expected


def test_a_job_cannot_skip_back_to_created():
    assert not any(can_transition(state, JobStatus.CREATED) for state in JobStatus)
