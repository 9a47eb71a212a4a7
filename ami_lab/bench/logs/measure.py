"""Run one benchmark mode on a fresh job and count what was stored (needs Django set up)."""

from __future__ import annotations

from ami.jobs.models import Job, JobLog
from ami.main.models import Project
from ami_lab.bench.logs.writers import JSON_COLUMN_MODES, BackendFigures, run_writers, summarize

BENCH_PROJECT = "ami bench logs"


def measure_mode(mode: str, processes: int, lines: int) -> BackendFigures:
    """Write with `mode` into a new job, count the lines stored, delete the job."""
    project, _ = Project.objects.get_or_create(name=BENCH_PROJECT)
    job = Job.objects.create(project=project, name=f"bench {mode}")
    try:
        results = run_writers(mode, job.pk, processes, lines)
        return summarize(mode, results, stored_lines(job, mode))
    finally:
        job.delete()


def stored_lines(job: Job, mode: str) -> int:
    if mode in JSON_COLUMN_MODES:
        job.refresh_from_db(fields=["legacy_logs"])
        return len(job.legacy_logs.get("stdout", []))
    return JobLog.objects.filter(job=job).count()
