"""A real pipeline stack in subprocesses: web server, Celery workers, processing workers."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from django.conf import settings as django_settings

from ami.jobs.models import Job
from ami_lab.demo.setup import ensure_images, ensure_pipeline, processing_key
from ami_lab.processes import celery_worker_command, free_port, port_answers, web_command
from ami_lab.supervisor import Supervisor, group_members
from tests.support.polling import wait_until


@dataclass
class Stack:
    supervisor: Supervisor
    port: int
    key: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def celery(self, name: str, queues: str, concurrency: int = 2) -> None:
        self.supervisor.start(
            name, celery_worker_command(queues, concurrency, f"{name}-{self.port}")
        )

    def worker(self, name: str, job: Job, *extra: str) -> None:
        self.supervisor.start(
            name,
            [
                sys.executable, "-m", "ami", "worker", "--url", self.url, "--job", str(job.pk),
                *extra,
            ],
            env={"AMI_PROCESSING_KEY": self.key},
        )  # fmt: skip

    def log(self, name: str) -> str:
        return (self.supervisor.log_dir / f"{name}.log").read_text(errors="replace")


@pytest.fixture
def media_root(tmp_path: Path, settings) -> Path:
    root = tmp_path / "media"
    settings.MEDIA_ROOT = root
    return root


@pytest.fixture
def demo_project(media_root):
    project = ensure_images(16)
    return project, ensure_pipeline()


@pytest.fixture
def stack_extra_env() -> dict[str, str]:
    """Extra environment for every process of the stack (parametrize to override)."""
    return {}


@pytest.fixture
def stack_env(subprocess_env, media_root, stack_extra_env) -> dict[str, str]:
    return {
        **subprocess_env,
        "AMI_MEDIA_ROOT": str(media_root),
        "PYTHONUNBUFFERED": "1",
        **stack_extra_env,
    }


@pytest.fixture
def stack(stack_env, tmp_path, demo_project):
    """Web server up and answering; Celery and processing workers are started by the test."""
    broker = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    broker.delete("ml_results", "jobs")
    supervisor = Supervisor(tmp_path / "logs", stack_env)
    port = free_port()
    supervisor.start("web", web_command(port))
    stack = Stack(supervisor, port, processing_key())
    try:
        wait_until(lambda: port_answers(port), "the web server")
        yield stack
    finally:
        groups = [child.pgid for child in supervisor.children]
        supervisor.stop()
        broker.delete("ml_results", "jobs")
        broker.close()
        assert not [pid for pgid in groups for pid in group_members(pgid)]
