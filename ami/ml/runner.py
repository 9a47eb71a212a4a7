"""The ML job's `JobRunner`: what `ami.jobs.lifecycle` calls to start and cancel a job.

Registered with the job core by `MlConfig.ready` (see `ami.jobs.runner`).
"""

from __future__ import annotations

from ami.jobs.states import JobStatus
from ami.ml.models import ProcessingService, ResultReceipt
from ami.ml.orchestration.dispatch import BadJobParams, selected_images
from ami.ml.orchestration.finish import finish_job
from ami.ml.tasks import run_job


class MlJobRunner:
    """Runs a job's pipeline over its images: collect, publish to NATS, save the results."""

    def start_errors(
        self, project_id: int, pipeline_id: int | None, params: dict | None
    ) -> dict[str, str]:
        """No pipeline, or params that select no images (or cannot select any)."""
        errors = {}
        if pipeline_id is None:
            errors["pipeline"] = "a job needs a pipeline to start"
        try:
            if not selected_images(project_id, params).exists():
                errors["params"] = "the job selects no images (the project has none, or none match)"
        except BadJobParams as exc:
            errors["params"] = str(exc)
        return errors

    def start(self, job_id: int) -> None:
        """Queue `run_job` on the `jobs` queue."""
        run_job.apply_async(args=[job_id], queue="jobs")

    def cancel(self, job_id: int) -> bool:
        """Revoke the job: from then on no task is served and its NATS stream is deleted."""
        return finish_job(job_id, JobStatus.REVOKED, reason="cancelled by user")

    def processing_services(self, job_id: int) -> list[str]:
        """The services whose results were accepted for this job, by name."""
        senders = ResultReceipt.objects.filter(job_id=job_id).values("processing_service_id")
        services = ProcessingService.objects.filter(pk__in=senders).order_by("name")
        return list(services.values_list("name", flat=True))
