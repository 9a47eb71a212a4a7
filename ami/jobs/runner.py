"""How the job core starts and cancels a job without knowing what the job runs.

`ami.jobs` sits below `ami.ml` and never imports it. The work of a job (collecting images,
NATS, processing services) belongs to the layer above, which registers a `JobRunner` here
when Django starts (`ami.ml.apps.MlConfig.ready`), as Django apps register admin classes or
system checks. `ami.jobs.lifecycle` calls the registered runner.
"""

from __future__ import annotations

from typing import Protocol

from django.core.exceptions import ImproperlyConfigured


class JobRunner(Protocol):
    """What the job core needs from whatever runs the jobs."""

    def start_errors(
        self, project_id: int, pipeline_id: int | None, params: dict | None
    ) -> dict[str, str]:
        """Why a job with these settings could not run, by field ({} if it can)."""
        ...

    def start(self, job_id: int) -> None:
        """Queue the work of a job that has just become PENDING (called after commit)."""
        ...

    def cancel(self, job_id: int) -> bool:
        """Revoke an unfinished job and stop its work; False if it was already final."""
        ...

    def processing_services(self, job_id: int) -> list[str]:
        """The names of the services that sent the job's results, for its page."""
        ...


_runner: JobRunner | None = None


def register(runner: JobRunner) -> None:
    """Make `runner` the one that starts and cancels jobs (the last registration wins)."""
    global _runner
    _runner = runner


def runner() -> JobRunner:
    """The registered runner; ImproperlyConfigured if no installed app registered one."""
    if _runner is None:
        raise ImproperlyConfigured(
            "No job runner is registered: add 'ami.ml' to INSTALLED_APPS (it registers one)."
        )
    return _runner
