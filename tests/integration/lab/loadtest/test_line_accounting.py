"""The load test's line accounting against real writes: a line is lost only if it is stored
nowhere, and each lost line is named.

A results worker can run a task of an earlier run's job: Celery restores the messages a
worker had not acknowledged when it shut down (or when its pool process was SIGKILLed, with
`task_reject_on_worker_lost`), and the next run's worker receives them first. Such a task
logs for *its* job ("Result for image N was already saved"), and the `sync` backend stores
the line there. The accounting once looked for every ledger line in the run's job only, and
so counted that stored line as lost, not in flight at any SIGKILL.
"""

from __future__ import annotations

import subprocess
import sys
import time
from types import SimpleNamespace

from ami.jobs.models import Job, JobLog
from ami_lab.loadtest.faults import FaultEvent
from ami_lab.loadtest.ledger import emitted_lines
from ami_lab.loadtest.report import ModeOutcome
from ami_lab.loadtest.runner import _count_lines
from tests.support.logs import LOGS_DB

pytestmark = LOGS_DB

# A worker process with the load test's ledger, logging through the real `sync` backend.
WORKER = """
import sys, django
from pathlib import Path
django.setup()
from ami.jobs.logging import job_logger
from ami_lab.loadtest.ledger import install
install(Path(sys.argv[1]))
run_job, earlier_job = int(sys.argv[2]), int(sys.argv[3])
job_logger(run_job).info("Saved image 1: 2 detections")
# A redelivered task of an earlier run's job (deleted since: JobLog has no FK constraint).
job_logger(earlier_job).info("Result for image 412 was already saved")
job_logger(run_job).info("Saved image 2: 0 detections")
"""


def run_worker(tmp_path, subprocess_env, run_job: int, earlier_job: int) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    env = {**subprocess_env, "JOB_LOG_BACKEND": "sync", "AMI_LOG_LEVEL": "INFO"}
    argv = [sys.executable, "-c", WORKER, str(tmp_path / "ledger"), str(run_job), str(earlier_job)]
    with open(logs / "celery-results.log", "w") as console:
        worker = subprocess.run(
            argv,
            env=env,
            stdout=console,
            stderr=subprocess.STDOUT,
            timeout=120,
        )
    assert worker.returncode == 0, (logs / "celery-results.log").read_text()


def no_faults(*events: FaultEvent) -> SimpleNamespace:
    return SimpleNamespace(events=list(events))


def test_a_line_stored_for_an_earlier_runs_job_is_not_lost(job, tmp_path, subprocess_env):
    earlier = Job.objects.create(project=job.project, pipeline=job.pipeline, name="earlier run")
    earlier_id = earlier.pk
    earlier.delete()  # the earlier test's (or mode's) job is gone; its task is not
    run_worker(tmp_path, subprocess_env, job.pk, earlier_id)
    assert JobLog.objects.filter(job_id=earlier_id).count() == 1  # stored, as an orphan

    result = ModeOutcome(mode="sync")
    _count_lines(result, "sync", job, tmp_path / "ledger", no_faults(), 0.25, tmp_path / "logs")

    assert (result.lines_emitted, result.lines_stored, result.lines_lost) == (3, 3, 0)
    assert result.lines_other_jobs == 1
    assert result.lost_lines == []


def test_a_line_stored_nowhere_is_lost_and_named(job, tmp_path, subprocess_env):
    run_worker(tmp_path, subprocess_env, job.pk, job.pk + 1000)
    saved = next(line for line in emitted_lines(tmp_path / "ledger") if line.job_id == job.pk)
    JobLog.objects.filter(message__contains=saved.line_id).delete()  # as if never written
    killed_at = time.time() + 5  # its process is killed later than any write could take
    plan = no_faults(FaultEvent("phase_results_sigkill", killed_at, f"pid {saved.pid}"))

    result = ModeOutcome(mode="sync", status="SUCCESS")
    _count_lines(result, "sync", job, tmp_path / "ledger", plan, 0.25, tmp_path / "logs")

    assert (result.lines_lost, result.lines_lost_at_sigkill) == (1, 0)
    [lost] = result.lost_lines
    assert lost["line_id"] == saved.line_id and lost["job_id"] == job.pk
    assert (lost["pid"], lost["emitted_at"]) == (saved.pid, saved.at)
    assert (lost["killed"], lost["killed_at"], lost["in_flight"]) == (True, killed_at, False)
    assert "Saved image 1: 2 detections" in lost["console"]
