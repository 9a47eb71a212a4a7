"""Secrets stay secret: a service's key and the secret key appear in no process's command
line, no log file of the stack, no stored log line and no error page."""

from __future__ import annotations

import httpx
import psutil
import pytest
from django.conf import settings

from ami.jobs.lifecycle import create_job, start_job
from ami.jobs.models import Job, JobLog
from ami.jobs.states import JobStatus
from tests.support.polling import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def final(job: Job) -> Job | None:
    job.refresh_from_db()
    return job if job.is_final else None


def command_lines(stack) -> list[str]:
    lines = []
    for child in stack.supervisor.children:
        for process in [psutil.Process(child.pgid), *psutil.Process(child.pgid).children(True)]:
            try:
                lines.append(" ".join(process.cmdline()))
            except psutil.NoSuchProcess:
                continue
    return lines


def test_no_secret_in_command_lines_logs_stored_lines_or_error_pages(stack, demo_project):
    project, pipeline = demo_project
    secrets = {"the service key": stack.key, "the secret key": settings.SECRET_KEY}
    stack.celery("celery", "jobs,ml_results")
    job = create_job(project, pipeline, "secrets", {"limit": 8})
    start_job(job.pk)
    stack.worker("worker", job, "--batch", "4")
    running = command_lines(stack)  # web, Celery (and its pool) and the worker, all running
    wait_until(lambda: final(job), "the job to finish")
    assert job.status == JobStatus.SUCCESS, job.failure_reason
    bad_key = httpx.get(
        f"{stack.url}/api/v2/jobs", headers={"Authorization": f"Api-Key {stack.key}x"}
    )
    not_found = httpx.get(f"{stack.url}/no/such/page")
    pages = [bad_key.text, not_found.text]
    logs = [path.read_text(errors="replace") for path in stack.supervisor.log_dir.glob("*.log")]
    stored = [f"{line.message} {line.context}" for line in JobLog.objects.filter(job=job)]
    assert len(running) >= 3 and logs and stored
    for name, secret in secrets.items():
        assert len(secret) >= 20
        for where, texts in [("a command line", running), ("a log file", logs),
                             ("a stored log line", stored), ("an error page", pages)]:  # fmt: skip
            assert not any(secret in text for text in texts), f"{name} in {where}"
