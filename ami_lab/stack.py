"""The running system as child processes: web, Celery workers, beat, processing workers.

Used by `ami demo` and `ami loadtest`, under a `Supervisor` that stops every process.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from ami_lab.processes import (
    WaitTimeout,
    celery_beat_command,
    celery_worker_command,
    poll_until,
    port_answers,
    web_command,
)
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
    app, port = options.celery_app, options.port
    commands = {
        "web": web_command(port),
        "celery-results": celery_worker_command(
            "ml_results", options.results_concurrency, f"results-{port}", app=app
        ),
        "celery-jobs": celery_worker_command("jobs", 1, f"jobs-{port}", app=app),
    }
    if options.beat:
        commands["celery-beat"] = celery_beat_command(
            app=app, schedule_file=options.beat_schedule_file
        )
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
    def child_died() -> str | None:
        dead = supervisor.exited()
        return f"{dead[0].name} exited at start; see its log" if dead else None

    try:
        poll_until(
            lambda: port_answers(port),
            timeout=timeout,
            what=f"the web server on port {port}",
            give_up=child_died,
        )
    except WaitTimeout as exc:
        raise StackError(str(exc)) from exc
