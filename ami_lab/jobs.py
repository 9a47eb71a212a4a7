"""Watching a job from the lab: wait until it ends (needs Django set up)."""

from __future__ import annotations

from collections.abc import Callable

from ami.jobs.progress import JobProgress, read_progress
from ami_lab.processes import poll_until

PROGRESS_INTERVAL = 0.25  # seconds between progress reads


def wait_for_job_end(
    job_id: int,
    *,
    timeout: float,
    on_progress: Callable[[JobProgress], None] | None = None,
    give_up: Callable[[], str | None] | None = None,
    interval: float = PROGRESS_INTERVAL,
) -> JobProgress:
    """Read the job's progress until its status is final; return that last reading.

    `on_progress` sees every reading (a progress bar); `give_up` may end the wait early with
    a reason. Raises `ami_lab.processes.WaitTimeout` if the job is not final in time.
    """

    def final_progress() -> JobProgress | None:
        progress = read_progress(job_id)
        if on_progress:
            on_progress(progress)
        return progress if progress.is_final else None

    return poll_until(
        final_progress,
        timeout=timeout,
        what=f"job {job_id} to end",
        interval=interval,
        give_up=give_up,
    )
