"""Reading a job's progress: one consistent snapshot of its status and stage counters.

Counters are written only by the guarded statements in `ami.jobs.locking` (exact under
concurrency and redelivery); this module only reads them, without locks. `task_outcomes`
reads the image tasks themselves, the source of truth a job's final status is decided from.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q

from ami.jobs.models import ImageTask, Job, JobStage
from ami.jobs.states import FINAL_STATES, JobStatus, StageKey, TaskState, final_status_for


@dataclass(frozen=True)
class StageProgress:
    key: str
    status: str
    total: int
    processed: int
    failed: int
    detections: int
    classifications: int
    progress: float

    @property
    def done(self) -> int:
        return self.processed + self.failed


@dataclass(frozen=True)
class JobProgress:
    job_id: int
    status: str
    failure_reason: str
    stages: dict[str, StageProgress]

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATES

    @property
    def process(self) -> StageProgress:
        return self.stages[StageKey.PROCESS]


def read_progress(job_id: int) -> JobProgress:
    """The job's status and stages as of one moment (a single SELECT, so one snapshot)."""
    rows = list(JobStage.objects.filter(job_id=job_id).select_related("job"))
    job = rows[0].job if rows else Job.objects.get(pk=job_id)
    stages = {
        stage.key: StageProgress(
            stage.key,
            stage.status,
            stage.total,
            stage.processed,
            stage.failed,
            stage.detections,
            stage.classifications,
            stage.progress,
        )
        for stage in rows
    }
    return JobProgress(job_id, job.status, job.failure_reason, stages)


@dataclass(frozen=True)
class TaskOutcomes:
    """How many of a job's image tasks are DONE, FAILED and still PENDING."""

    done: int
    failed: int
    pending: int

    @property
    def total(self) -> int:
        return self.done + self.failed + self.pending

    @property
    def final_status(self) -> JobStatus:
        """The status the job ends in once nothing is pending (see `final_status_for`)."""
        return final_status_for(self.done, self.failed)


def task_outcomes(job_id: int) -> TaskOutcomes:
    """The job's image tasks counted by state, in one query (one snapshot). Locks: nothing."""
    counts = ImageTask.objects.filter(job_id=job_id).aggregate(
        done=Count("id", filter=Q(state=TaskState.DONE)),
        failed=Count("id", filter=Q(state=TaskState.FAILED)),
        pending=Count("id", filter=Q(state=TaskState.PENDING)),
    )
    return TaskOutcomes(counts["done"], counts["failed"], counts["pending"])
