"""Job and stage states, and which job transitions are allowed.

A final job is never pulled back: no transition leaves SUCCESS, COMPLETED_WITH_ERRORS,
FAILURE or REVOKED. A job whose every image has an answer ends SUCCESS if none failed,
COMPLETED_WITH_ERRORS if some failed and some were processed, FAILURE if all failed
(`final_status_for`), so "finished, 3 of 742 images failed" never reads as a clean run.
"""

from __future__ import annotations

from django.db import models


class JobStatus(models.TextChoices):
    CREATED = "CREATED"
    PENDING = "PENDING"
    STARTED = "STARTED"
    SUCCESS = "SUCCESS"
    COMPLETED_WITH_ERRORS = "COMPLETED_WITH_ERRORS", "Completed with errors"
    FAILURE = "FAILURE"
    REVOKED = "REVOKED"


class StageKey(models.TextChoices):
    COLLECT = "collect"
    PROCESS = "process"
    RESULTS = "results"


class StageStatus(models.TextChoices):
    PENDING = "PENDING"
    STARTED = "STARTED"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"


class TaskState(models.TextChoices):
    """The state of one image's task within a job."""

    PENDING = "PENDING"
    DONE = "DONE"
    FAILED = "FAILED"


FINAL_STATES = frozenset(
    {JobStatus.SUCCESS, JobStatus.COMPLETED_WITH_ERRORS, JobStatus.FAILURE, JobStatus.REVOKED}
)

ALLOWED_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.CREATED: frozenset(
        {JobStatus.PENDING, JobStatus.STARTED, JobStatus.FAILURE, JobStatus.REVOKED}
    ),
    JobStatus.PENDING: frozenset({JobStatus.STARTED, JobStatus.FAILURE, JobStatus.REVOKED}),
    JobStatus.STARTED: frozenset(
        {
            JobStatus.SUCCESS,
            JobStatus.COMPLETED_WITH_ERRORS,
            JobStatus.FAILURE,
            JobStatus.REVOKED,
        }
    ),
    JobStatus.SUCCESS: frozenset(),
    JobStatus.COMPLETED_WITH_ERRORS: frozenset(),
    JobStatus.FAILURE: frozenset(),
    JobStatus.REVOKED: frozenset(),
}


def sources_of(target: JobStatus) -> list[str]:
    """The states from which a job may move to `target`."""
    return [str(src) for src, targets in ALLOWED_TRANSITIONS.items() if target in targets]


def can_transition(source: JobStatus | str, target: JobStatus | str) -> bool:
    return JobStatus(target) in ALLOWED_TRANSITIONS[JobStatus(source)]


def final_status_for(done: int, failed: int) -> JobStatus:
    """How a job whose every image has an answer ends, from its DONE and FAILED task counts.

    SUCCESS only if no image failed (a job with no images too); COMPLETED_WITH_ERRORS if
    some failed and at least one was processed; FAILURE if every image failed.
    """
    if failed == 0:
        return JobStatus.SUCCESS
    return JobStatus.COMPLETED_WITH_ERRORS if done > 0 else JobStatus.FAILURE


def status_text(status: JobStatus | str) -> str:
    """What a status badge shows: the status name, except COMPLETED_WITH_ERRORS, whose
    label ("Completed with errors") reads better than the long name."""
    if status == JobStatus.COMPLETED_WITH_ERRORS:
        return JobStatus.COMPLETED_WITH_ERRORS.label
    return str(status)
