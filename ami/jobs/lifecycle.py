"""What a user does to a job: create, start, cancel, retry.

The API and the CLI call these; the work itself runs in Celery tasks (`ami.jobs.tasks`).
"""

from __future__ import annotations

from celery import current_app
from django.db import transaction

from ami.jobs.locking import transition
from ami.jobs.models import Job, JobStage
from ami.jobs.states import JobStatus, StageKey
from ami.main.models import Project
from ami.ml.models import Pipeline
from ami.ml.orchestration.dispatch import BadJobParams, selected_images
from ami.ml.orchestration.finish import finish_job

RUN_JOB_TASK = "ami.jobs.tasks.run_job"


def create_job(
    project: Project, pipeline: Pipeline | None, name: str, params: dict | None = None
) -> Job:
    """Create a job with its three stages, not started."""
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
    """Why a job with these settings could not run ({} if it can): no pipeline, no images."""
    errors = {}
    if pipeline_id is None:
        errors["pipeline"] = "a job needs a pipeline to start"
    try:
        if not selected_images(project_id, params).exists():
            errors["params"] = "the job selects no images (the project has none, or none match)"
    except BadJobParams as exc:
        errors["params"] = str(exc)
    return errors


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
    transaction.on_commit(lambda: current_app.send_task(RUN_JOB_TASK, args=[job_id], queue="jobs"))
    return True


def cancel_job(job_id: int) -> bool:
    """Revoke a job that has not finished; return False if it was already final.

    From then on no task is served (the API refuses a final job and its stream is deleted)
    and results that still arrive are not counted.
    """
    return finish_job(job_id, JobStatus.REVOKED, reason="cancelled by user")


def retry_job(job_id: int) -> Job:
    """Start a new job with the same project, pipeline and parameters (a final job stays).

    Raises NotStartable, creating nothing, if such a job could not run.
    """
    original = Job.objects.get(pk=job_id)
    check_startable(original.project_id, original.pipeline_id, original.params)
    job = create_job(original.project, original.pipeline, original.name, original.params)
    start_job(job.pk)
    return job
