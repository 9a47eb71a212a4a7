import pytest

from ami.jobs.states import (
    FINAL_STATES,
    JobStatus,
    can_transition,
    final_status_for,
    sources_of,
    status_text,
)

# Written out by hand from the state machine (docs/architecture.md, "A job's life"), not
# derived from ALLOWED_TRANSITIONS: a wrong entry in either one fails the test.
CREATED, PENDING, STARTED = "CREATED", "PENDING", "STARTED"
EXPECTED_SOURCES = {
    JobStatus.CREATED: set(),
    JobStatus.PENDING: {CREATED},
    JobStatus.STARTED: {CREATED, PENDING},
    JobStatus.SUCCESS: {STARTED},
    JobStatus.COMPLETED_WITH_ERRORS: {STARTED},
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


def test_final_states_are_exactly_the_four_endings():
    assert set(FINAL_STATES) == {"SUCCESS", "COMPLETED_WITH_ERRORS", "FAILURE", "REVOKED"}


@pytest.mark.parametrize(
    ("done", "failed", "expected"),
    [
        (742, 0, JobStatus.SUCCESS),
        (0, 0, JobStatus.SUCCESS),  # no images: nothing failed
        (739, 3, JobStatus.COMPLETED_WITH_ERRORS),
        (1, 741, JobStatus.COMPLETED_WITH_ERRORS),
        (0, 742, JobStatus.FAILURE),
        (0, 1, JobStatus.FAILURE),
    ],
)
def test_final_status_follows_the_image_counts(done, failed, expected):
    assert final_status_for(done, failed) == expected


def test_the_long_status_reads_as_words_on_a_badge():
    assert JobStatus.COMPLETED_WITH_ERRORS.label == "Completed with errors"
    assert status_text(JobStatus.COMPLETED_WITH_ERRORS) == "Completed with errors"
    assert status_text("SUCCESS") == "SUCCESS"
    assert all(len(status) <= 32 for status in JobStatus)  # Job.status is a varchar(32)
