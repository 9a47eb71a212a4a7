"""Every job-row lock and guarded update, in one place.

Rules kept here:
- A job row is locked only with `FOR NO KEY UPDATE`. A plain `FOR UPDATE` conflicts with
  the `FOR KEY SHARE` that the (deferred) foreign-key check of a JobLog insert takes, so a
  process that held it and logged through its second connection would wait on itself.
- A lock is held for one short statement or block: no logging, network or NATS calls inside.
- Status changes are conditional UPDATEs: they succeed only from an allowed source state,
  so a final job is never pulled back and concurrent finishers cannot both win.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ami.jobs.models import Job
from ami.jobs.states import JobStatus, sources_of


@contextmanager
def lock_job(job_id: int) -> Iterator[Job]:
    """Lock one job row `FOR NO KEY UPDATE` for the duration of the block.

    Locks: the `jobs_job` row of `job_id`, until the block's transaction ends.
    Caller's contract: keep the block short; never log, call the network or NATS inside
    (collect what you want to log and log it after the block).
    """
    with transaction.atomic():
        yield Job.objects.select_for_update(no_key=True).get(pk=job_id)


def transition(job_id: int, target: JobStatus, *, reason: str = "") -> bool:
    """Move a job to `target` if its current status allows it; return True if it moved.

    Locks: the job row, for this single UPDATE statement only.
    Exactly one of several concurrent callers wins a transition into a final state; the
    others get False and must not repeat the side effects of finishing.
    """
    now = timezone.now()
    changes: dict = {"status": target}
    if target == JobStatus.STARTED:
        changes["started_at"] = now
    if target in (JobStatus.SUCCESS, JobStatus.FAILURE, JobStatus.REVOKED):
        changes["finished_at"] = now
    if reason:
        changes["failure_reason"] = reason
    updated = Job.objects.filter(Q(pk=job_id) & Q(status__in=sources_of(target))).update(**changes)
    return updated == 1


def touch_heartbeat(job_id: int) -> None:
    """Record that work on the job is alive (read by the stale-job check).

    Locks: the job row, for this single UPDATE statement only.
    """
    Job.objects.filter(pk=job_id).update(last_heartbeat_at=timezone.now())
