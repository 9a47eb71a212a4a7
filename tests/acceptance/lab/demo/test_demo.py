"""`ami demo` in a subprocess: a full run, and Ctrl-C; neither leaves a process behind."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

from ami.jobs.models import Job
from ami.jobs.states import JobStatus
from ami_lab.servers.postgres import PostgresServer
from ami_lab.supervisor import group_members
from tests.support.polling import wait_until
from tests.support.servers import URL_VARS, in_run_dir

pytestmark = pytest.mark.django_db(transaction=True)


class Demo:
    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ami", "demo", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def child_groups(self) -> list[int]:
        return [int(pid) for pid in re.findall(r": pid (\d+)", self.output)]

    def wait(self, timeout: float = 240) -> int:
        code = self.process.wait(timeout=timeout)
        self.reader.join(timeout=10)
        return code


@pytest.fixture
def demo_env(subprocess_env, tmp_path) -> dict[str, str]:
    return {
        **subprocess_env,
        "AMI_MEDIA_ROOT": str(tmp_path / "media"),
        "AMI_RUN_DIR": str(tmp_path / "run"),
        "PYTHONUNBUFFERED": "1",
    }


def test_demo_runs_the_job_and_stops_everything(demo_env):
    demo = Demo(demo_env, "--images", "12", "--results-concurrency", "2")
    assert demo.wait() == 0, demo.output
    assert "SUCCESS" in demo.output
    assert re.search(r"precision \(IoU>=0\.5\)\s*│\s*1\.000", demo.output), demo.output
    assert "All demo processes stopped." in demo.output
    groups = demo.child_groups()
    assert len(groups) == 6  # web, 2 celery workers, beat, 2 processing workers
    assert not [pid for pgid in groups for pid in group_members(pgid)]


def test_ctrl_c_cancels_the_job_and_stops_everything(demo_env):
    demo = Demo(
        demo_env, "--images", "40", "--results-concurrency", "2", "--inference-delay", "0.5"
    )
    wait_until(lambda: "processing worker-1: pid" in demo.output, "the demo's workers")
    wait_until(lambda: Job.objects.filter(status=JobStatus.STARTED).exists(), "the job to run")
    demo.process.send_signal(signal.SIGINT)
    demo.wait(timeout=120)
    assert "All demo processes stopped." in demo.output, demo.output
    groups = demo.child_groups()
    assert len(groups) == 6
    assert not [pid for pgid in groups for pid in group_members(pgid)]
    assert Job.objects.get().status == JobStatus.REVOKED


def test_demo_stops_the_embedded_servers_it_started(demo_env, tmp_path):
    env = {k: v for k, v in demo_env.items() if k not in URL_VARS}
    run_dir = Path(env["AMI_RUN_DIR"])
    demo = Demo(env, "--images", "4", "--results-concurrency", "1")
    assert demo.wait(timeout=300) == 0, demo.output
    assert "SUCCESS" in demo.output
    assert "Stopped the embedded servers this command started: postgres, nats, redis." in (
        demo.output
    )
    with in_run_dir(run_dir):
        data_dir = PostgresServer().data_dir
    left = [
        process.info
        for process in psutil.process_iter(["pid", "cmdline"])
        if any(str(run_dir) in arg or str(data_dir) in arg for arg in process.info["cmdline"] or [])
    ]
    assert not left
    ami_services_down = [sys.executable, "-m", "ami", "services", "down", "--purge"]
    subprocess.run(ami_services_down, env=env, check=True, capture_output=True, timeout=60)


def test_help_starts_nothing(demo_env):
    env = {k: v for k, v in demo_env.items() if k not in URL_VARS}
    result = subprocess.run(
        [sys.executable, "-m", "ami", "demo", "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "--images" in result.stdout
    assert not Path(env["AMI_RUN_DIR"]).exists()
