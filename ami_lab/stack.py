"""The running system as child processes: web, Celery workers, beat, processing workers.

Used by `ami demo` and `ami loadtest`, under a `Supervisor` that stops every process.
"""

from __future__ import annotations

import socket
import sys
import time
from dataclasses import dataclass

from ami_lab.supervisor import Child, Supervisor

WEB_READY_TIMEOUT = 60.0  # seconds


class StackError(RuntimeError):
    """A process of the stack did not start."""


@dataclass
class StackOptions:
    port: int
    results_concurrency: int = 8
    celery_app: str = "ami.celery"
    beat: bool = True
    beat_schedule_file: str | None = None
    web_app_name: str | None = None  # the web's DB application_name, if not the workers'


@dataclass
class ProcessingWorkerOptions:
    key: str
    job_id: int
    concurrency: int = 2
    batch: int = 8
    inference_delay: float = 0.0


def start_stack(supervisor: Supervisor, options: StackOptions) -> list[Child]:
    """Start web, both Celery queues' workers and (optionally) beat; wait for the web port."""
    python = sys.executable
    celery = [python, "-m", "celery", "-A", options.celery_app]
    quiet = ["--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO"]
    commands = {
        "web": [
            python, "-m", "uvicorn", "ami.asgi:application",
            "--host", "127.0.0.1", "--port", str(options.port), "--no-access-log",
        ],
        "celery-results": [
            *celery, "worker", "-Q", "ml_results", "-c", str(options.results_concurrency),
            "-n", f"results-{options.port}@%h", *quiet,
        ],
        "celery-jobs": [
            *celery, "worker", "-Q", "jobs", "-c", "1", "-n", f"jobs-{options.port}@%h", *quiet,
        ],
    }  # fmt: skip
    if options.beat:
        schedule = ["-s", options.beat_schedule_file] if options.beat_schedule_file else []
        commands["celery-beat"] = [*celery, "beat", *schedule, "--loglevel", "INFO"]
    web_env = {"AMI_APP_NAME": options.web_app_name} if options.web_app_name else None
    children = [
        supervisor.start(name, argv, env=web_env if name == "web" else None)
        for name, argv in commands.items()
    ]
    wait_for_port(supervisor, options.port)
    return children


def start_processing_workers(
    supervisor: Supervisor, port: int, count: int, options: ProcessingWorkerOptions
) -> list[Child]:
    """Start `count` reference processing services (`ami worker`) on one job."""
    argv = [
        sys.executable, "-m", "ami", "worker",
        "--url", f"http://127.0.0.1:{port}", "--job", str(options.job_id),
        "--concurrency", str(options.concurrency), "--batch", str(options.batch),
        "--inference-delay", str(options.inference_delay),
    ]  # fmt: skip
    env = {"AMI_PROCESSING_KEY": options.key}  # not on the command line: ps shows it
    return [supervisor.start(f"worker-{i}", argv, env=env) for i in range(count)]


def wait_for_port(supervisor: Supervisor, port: int, timeout: float = WEB_READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if supervisor.exited():
            raise StackError(f"{supervisor.exited()[0].name} exited at start; see its log")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return
        except OSError:
            time.sleep(0.2)
    raise StackError(f"web server not answering on port {port} after {timeout}s")
