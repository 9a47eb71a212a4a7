"""Job and stage states, and which job transitions are allowed.

A final job is never pulled back: no transition leaves SUCCESS, FAILURE or REVOKED.
"""

from __future__ import annotations

from django.db import models


class JobStatus(models.TextChoices):
    CREATED = "CREATED"
    PENDING = "PENDING"
    STARTED = "STARTED"
    SUCCESS = "SUCCESS"
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


FINAL_STATES = frozenset({JobStatus.SUCCESS, JobStatus.FAILURE, JobStatus.REVOKED})

ALLOWED_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.CREATED: frozenset(
        {JobStatus.PENDING, JobStatus.STARTED, JobStatus.FAILURE, JobStatus.REVOKED}
    ),
    JobStatus.PENDING: frozenset({JobStatus.STARTED, JobStatus.FAILURE, JobStatus.REVOKED}),
    JobStatus.STARTED: frozenset({JobStatus.SUCCESS, JobStatus.FAILURE, JobStatus.REVOKED}),
    JobStatus.SUCCESS: frozenset(),
    JobStatus.FAILURE: frozenset(),
    JobStatus.REVOKED: frozenset(),
}


def sources_of(target: JobStatus) -> list[str]:
    """The states from which a job may move to `target`."""
    return [str(src) for src, targets in ALLOWED_TRANSITIONS.items() if target in targets]


def can_transition(source: JobStatus | str, target: JobStatus | str) -> bool:
    return JobStatus(target) in ALLOWED_TRANSITIONS[JobStatus(source)]
