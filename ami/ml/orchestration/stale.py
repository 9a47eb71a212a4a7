"""The stale-job check: finalize running jobs that have shown no sign of life for too long."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from ami.jobs.locking import (
    close_stages,
    fold_increments,
    stale_job_ids,
    transition_if_stale,
)
from ami.jobs.logging import job_logger
from ami.jobs.models import Job, JobStage
from ami.jobs.progress import task_outcomes
from ami.jobs.states import JobStatus, StageKey, StageStatus
from ami.ml.orchestration.finish import errors_summary, final_outcome, remove_queue

logger = logging.getLogger(__name__)


def check_stale_jobs(stale_after: float | None = None) -> list[int]:
    """Finalize every stale job; return the ids finalized.

    A started job whose images were all collected and all have results only missed its
    finishing step: it ends as finishing would have ended it (`final_outcome`: SUCCESS,
    COMPLETED_WITH_ERRORS, or FAILURE if every image failed). Any other stale job ends
    FAILURE with the reason.
    CREATED and final jobs are never touched, and a heartbeat that arrives during the check
    keeps the job alive.
    """
    seconds = settings.JOB_STALE_AFTER if stale_after is None else stale_after
    cutoff = timezone.now() - timedelta(seconds=seconds)
    finalized = []
    for job_id in stale_job_ids(cutoff):
        outcomes = task_outcomes(job_id)
        reason = failure_reason(job_id, seconds, outcomes.pending)
        target, reason = (JobStatus.FAILURE, reason) if reason else final_outcome(outcomes)
        fold_increments(job_id, wait=True)  # a final job shows exact counters
        if not transition_if_stale(job_id, target, cutoff, reason):
            continue
        close_stages(job_id)
        remove_queue(job_id)
        finalized.append(job_id)
        log = job_logger(job_id)
        if target == JobStatus.FAILURE:
            log.error("Stale job finalized: %s", reason)
        elif target == JobStatus.COMPLETED_WITH_ERRORS:
            log.warning("Stale job finalized with errors: %s", errors_summary(outcomes))
        else:
            log.info("Stale job finalized: every image had a result")
    if finalized:
        logger.info("Finalized stale jobs: %s", finalized)
    return finalized


def failure_reason(job_id: int, seconds: float, pending: int) -> str:
    """Why a stale job failed, or "" if every one of its images has a result (`pending`:
    how many of its image tasks are still PENDING)."""
    silence = f"no heartbeat for {seconds:.0f}s"
    status = Job.objects.filter(pk=job_id).values_list("status", flat=True).first()
    if status == JobStatus.PENDING:
        return f"{silence}; it never started (is a worker consuming the jobs queue?)"
    collected = JobStage.objects.filter(
        job_id=job_id, key=StageKey.COLLECT, status=StageStatus.SUCCESS
    ).exists()
    if not collected:
        return f"{silence}; its images were never collected"
    if pending:
        return f"{silence}; {pending} images never got a result"
    return ""
