"""Finishing a job exactly once, and cleaning up its task queue."""

from __future__ import annotations

import logging

from ami.jobs.locking import close_stages, pending_task_count, transition
from ami.jobs.logging import FINAL_LINE_KEY, job_logger
from ami.jobs.states import JobStatus
from ami.ml.orchestration import nats

logger = logging.getLogger(__name__)


def finish_job(job_id: int, status: JobStatus, reason: str = "") -> bool:
    """Move the job to a final status; the one caller that wins cleans up. True if it won."""
    if not transition(job_id, status, reason=reason):
        return False
    close_stages(job_id)
    _log_final_line(job_id, status, reason)
    remove_queue(job_id)
    return True


def _log_final_line(job_id: int, status: JobStatus, reason: str) -> None:
    # Logged before the queue is removed, which may wait on NATS: live tails end after it.
    log, marker = job_logger(job_id), {FINAL_LINE_KEY: str(status)}
    if status == JobStatus.SUCCESS:
        log.info("Job finished: every image was processed", extra=marker)
    elif status == JobStatus.REVOKED:
        log.warning("Job cancelled: %s", reason or "no reason given", extra=marker)
    else:
        log.error("Job failed: %s", reason or "no reason given", extra=marker)


def finish_if_complete(job_id: int) -> bool:
    """Finish the job as SUCCESS if no image waits for a result; True if this call did it."""
    if pending_task_count(job_id) > 0:
        return False
    return finish_job(job_id, JobStatus.SUCCESS)


def remove_queue(job_id: int) -> None:
    """Delete the job's stream; a NATS failure is logged, not raised (the job is final)."""
    try:
        nats.delete_queue(job_id)
    except (nats.NatsError, nats.NatsTimeoutError):
        logger.warning("Could not delete the task queue of job %s", job_id, exc_info=True)
