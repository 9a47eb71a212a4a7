"""Finishing a job exactly once, and cleaning up its task queue.

A job whose every image has an answer ends SUCCESS if no image failed,
COMPLETED_WITH_ERRORS if some failed and some were processed, and FAILURE if every image
failed. The decision reads the image tasks (`task_outcomes`), the source of truth, not the
stage counters: a counter is a copy of them kept for progress display.
"""

from __future__ import annotations

import logging

from ami.jobs.locking import close_stages, fold_increments, has_pending_tasks, transition
from ami.jobs.logging import FINAL_LINE_KEY, job_logger
from ami.jobs.progress import TaskOutcomes, task_outcomes
from ami.jobs.states import JobStatus
from ami.ml.orchestration import nats

logger = logging.getLogger(__name__)


def finish_job(
    job_id: int, status: JobStatus, reason: str = "", outcomes: TaskOutcomes | None = None
) -> bool:
    """Move the job to a final status; the one caller that wins cleans up. True if it won.

    `outcomes` (the job's task counts) is needed only for the COMPLETED_WITH_ERRORS line;
    it is read here when not given.
    """
    # Counts still in increments reach the stage rows first: a final job shows exact ones.
    fold_increments(job_id, wait=True)
    if not transition(job_id, status, reason=reason):
        return False
    close_stages(job_id)
    if status == JobStatus.COMPLETED_WITH_ERRORS and outcomes is None:
        outcomes = task_outcomes(job_id)
    _log_final_line(job_id, status, reason, outcomes)
    remove_queue(job_id)
    return True


def final_outcome(outcomes: TaskOutcomes) -> tuple[JobStatus, str]:
    """The final status of a job with no pending image, and its failure reason ("" if none)."""
    status = outcomes.final_status
    reason = f"every image failed ({outcomes.failed})" if status == JobStatus.FAILURE else ""
    return status, reason


def errors_summary(outcomes: TaskOutcomes) -> str:
    """ "3 of 742 images failed": how a job completed with errors says so."""
    return f"{outcomes.failed} of {outcomes.total} images failed"


def _log_final_line(
    job_id: int, status: JobStatus, reason: str, outcomes: TaskOutcomes | None
) -> None:
    # Logged before the queue is removed, which may wait on NATS: live tails end after it.
    log, marker = job_logger(job_id), {FINAL_LINE_KEY: str(status)}
    if status == JobStatus.SUCCESS:
        log.info("Job finished: every image was processed", extra=marker)
    elif status == JobStatus.COMPLETED_WITH_ERRORS and outcomes is not None:
        log.warning("Job finished with errors: %s", errors_summary(outcomes), extra=marker)
    elif status == JobStatus.REVOKED:
        log.warning("Job cancelled: %s", reason or "no reason given", extra=marker)
    else:
        log.error("Job failed: %s", reason or "no reason given", extra=marker)


def finish_if_complete(job_id: int) -> bool:
    """Finish the job if no image waits for a result; True if this call did it.

    Its status follows the image tasks (see the module docstring). The cheap look for a
    pending image comes first (it stops at the first): this runs after every batch of
    results, and tasks never go back to PENDING, so once none is pending the full count is
    stable.
    """
    if has_pending_tasks(job_id):
        return False
    outcomes = task_outcomes(job_id)
    status, reason = final_outcome(outcomes)
    return finish_job(job_id, status, reason, outcomes)


def remove_queue(job_id: int) -> None:
    """Delete the job's stream; a NATS failure is logged, not raised (the job is final)."""
    try:
        nats.delete_queue(job_id)
    except (nats.NatsError, nats.NatsTimeoutError):
        logger.warning("Could not delete the task queue of job %s", job_id, exc_info=True)
