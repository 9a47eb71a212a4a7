import pytest

from ami.jobs.states import FINAL_STATES, JobStatus, can_transition, sources_of

# Written out by hand from the state machine (docs/architecture.md, "A job's life"), not
# derived from ALLOWED_TRANSITIONS: a wrong entry in either one fails the test.
CREATED, PENDING, STARTED = "CREATED", "PENDING", "STARTED"
EXPECTED_SOURCES = {
    JobStatus.CREATED: set(),
    JobStatus.PENDING: {CREATED},
    JobStatus.STARTED: {CREATED, PENDING},
    JobStatus.SUCCESS: {STARTED},
    JobStatus.FAILURE: {CREATED, PENDING, STARTED},
    JobStatus.REVOKED: {CREATED, PENDING, STARTED},
}


@pytest.mark.parametrize("final", sorted(FINAL_STATES))
def test_final_states_have_no_way_out(final):
    assert all(not can_transition(final, target) for target in JobStatus)


def test_sources_of_matches_the_state_machine():
    sources = {target: sources_of(target) for target in JobStatus}
    assert {target: set(found) for target, found in sources.items()} == EXPECTED_SOURCES
    assert all(len(found) == len(set(found)) for found in sources.values())  # no repeats
    assert all(can_transition(source, target) for target in JobStatus for source in sources[target])


def test_a_job_cannot_skip_back_to_created():
    assert not any(can_transition(state, JobStatus.CREATED) for state in JobStatus)
