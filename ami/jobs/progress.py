"""Reading a job's progress: one consistent snapshot of its status and stage counters.

Counters are written only by the guarded statements in `ami.jobs.locking` (exact under
concurrency and redelivery); this module only reads them, without locks.
"""

from __future__ import annotations

from dataclasses import dataclass

from ami.jobs.models import Job, JobStage
from ami.jobs.states import FINAL_STATES, StageKey


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
