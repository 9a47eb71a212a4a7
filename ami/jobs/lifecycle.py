"""What a user does to a job: create, start, cancel, retry.

The API and the CLI call these. What a job runs, and how it is stopped, is the registered
`JobRunner`'s business (`ami.jobs.runner`; the ML job's is `ami.ml.runner`).
"""

from __future__ import annotations

from django.db import models, transaction

from ami.jobs.locking import transition
from ami.jobs.models import Job, JobStage
from ami.jobs.runner import runner
from ami.jobs.states import JobStatus, StageKey
from ami.main.models import Project


def create_job(
    project: Project, pipeline: models.Model | None, name: str, params: dict | None = None
) -> Job:
    """Create a job with its three stages, not started (`pipeline`: an `ml.Pipeline`)."""
    with transaction.atomic():
        job = Job.objects.create(project=project, pipeline=pipeline, name=name, params=params or {})
        JobStage.objects.bulk_create(JobStage(job=job, key=key) for key in StageKey)
    return job


class NotStartable(ValueError):
    """A job that could never run; `errors` maps each field at fault to why."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {why}" for field, why in errors.items()))
        self.errors = errors


def start_errors(project_id: int, pipeline_id: int | None, params: dict | None) -> dict[str, str]:
    """Why a job with these settings could not run, by field ({} if it can)."""
    return runner().start_errors(project_id, pipeline_id, params)


def check_startable(project_id: int, pipeline_id: int | None, params: dict | None) -> None:
    """Raise NotStartable, naming the fields at fault, unless such a job could run."""
    errors = start_errors(project_id, pipeline_id, params)
    if errors:
        raise NotStartable(errors)


def start_job(job_id: int) -> bool:
    """Queue a created job for running; return False if it was not in a startable state.

    Raises NotStartable (and leaves the job as it is) if it has no pipeline or no images.
    """
    job = Job.objects.only("project_id", "pipeline_id", "params").get(pk=job_id)
    check_startable(job.project_id, job.pipeline_id, job.params)
    if not transition(job_id, JobStatus.PENDING):
        return False
    transaction.on_commit(lambda: runner().start(job_id))
    return True


def cancel_job(job_id: int) -> bool:
    """Revoke a job that has not finished; return False if it was already final.

    From then on no task is served (the API refuses a final job, and the runner stops its
    work) and results that still arrive are not counted.
    """
    return runner().cancel(job_id)


def retry_job(job_id: int) -> Job:
    """Start a new job with the same project, pipeline and parameters (a final job stays).

    Raises NotStartable, creating nothing, if such a job could not run.
    """
    original = Job.objects.get(pk=job_id)
    check_startable(original.project_id, original.pipeline_id, original.params)
    job = create_job(original.project, original.pipeline, original.name, original.params)
    start_job(job.pk)
    return job
