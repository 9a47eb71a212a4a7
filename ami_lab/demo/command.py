"""`ami demo` once the servers are up and migrated: the pipeline demo end to end.

Starts the web server, Celery workers (`ml_results` and `jobs`), Celery beat and processing
workers as child processes, runs one job over the demo images with a live progress bar,
then prints a summary. Ctrl-C (or SIGTERM) cancels the job and stops every child process.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ami.jobs.lifecycle import cancel_job, create_job, start_job
from ami.jobs.models import Job, JobLog, JobStage
from ami.jobs.progress import JobProgress
from ami.jobs.states import StageKey
from ami_lab.demo.setup import (
    Score,
    ensure_demo_user,
    ensure_images,
    ensure_pipeline,
    evaluate,
    processing_key,
)
from ami_lab.jobs import wait_for_job_end
from ami_lab.processes import WaitTimeout, free_port
from ami_lab.servers.paths import run_dir
from ami_lab.stack import (
    ProcessingWorkerOptions,
    StackError,
    StackOptions,
    start_processing_workers,
    start_stack,
)
from ami_lab.supervisor import Supervisor

DEMO_JOB_NAME = "Demo: {count} captures"


@dataclass
class Outcome:
    job: Job
    wall_time: float
    interrupted: bool
    problem: str = ""


class Command(BaseCommand):
    help = "Run the ML pipeline demo end to end: one job over the demo images, live."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--images", type=int, default=742)
        parser.add_argument("--workers", type=int, default=2, help="processing workers")
        parser.add_argument("--worker-concurrency", type=int, default=2)
        parser.add_argument("--batch", type=int, default=8, help="tasks per reservation")
        parser.add_argument("--results-concurrency", type=int, default=8)
        parser.add_argument("--inference-delay", type=float, default=0.0)
        parser.add_argument("--timeout", type=float, default=1200.0, help="seconds")
        parser.add_argument("--serve", action="store_true", help="keep the web server up")

    def handle(self, *args: object, **options: object) -> None:
        if int(options["images"]) < 1 or int(options["workers"]) < 1:
            raise CommandError("--images and --workers must be >= 1")
        signal.signal(signal.SIGTERM, _interrupt)
        console = Console()
        started = time.monotonic()
        try:
            with console.status("Preparing demo images and pipeline..."):
                project = ensure_images(int(options["images"]))
                pipeline = ensure_pipeline()
                ensure_demo_user(project)
                key = processing_key()
        except KeyboardInterrupt:
            console.print("Interrupted before any process started.")
            return
        count = int(options["images"])
        job = create_job(project, pipeline, DEMO_JOB_NAME.format(count=count), {"limit": count})
        supervisor = Supervisor(run_dir() / "demo", {**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            self.run_and_report(supervisor, console, job, key, options, started)
        except KeyboardInterrupt:
            console.print("Stopping...")
        finally:
            # Further Ctrl-C must not cut the cleanup short and leave processes behind.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            supervisor.stop([c.name for c in supervisor.children if c.name.startswith("worker")])
            supervisor.stop()
            console.print("All demo processes stopped.")

    def run_and_report(self, supervisor, console, job, key, options, started) -> None:
        port = free_port()
        outcome = self.run(supervisor, console, job, port, key, options, started)
        print_summary(console, outcome, port, evaluate(outcome.job))
        if options["serve"] and not outcome.interrupted:
            supervisor.stop([c.name for c in supervisor.children if c.name != "web"])
            console.print("Serving the job page; Ctrl-C to stop.")
            while True:
                time.sleep(1)

    def run(self, supervisor, console, job, port, key, options, started) -> Outcome:
        stack = StackOptions(
            port=port,
            results_concurrency=int(options["results_concurrency"]),
            beat_schedule_file=str(run_dir() / "demo" / "celerybeat-schedule"),
        )
        workers = ProcessingWorkerOptions(
            key=key,
            job_id=job.pk,
            concurrency=int(options["worker_concurrency"]),
            batch=int(options["batch"]),
            inference_delay=float(options["inference_delay"]),
        )
        try:
            for child in start_stack(supervisor, stack):
                console.print(f"  {child.name}: pid {child.pgid} (log {child.log_path})")
            start_job(job.pk)
            for child in start_processing_workers(
                supervisor, port, int(options["workers"]), workers
            ):
                console.print(f"  processing {child.name}: pid {child.pgid}")
            problem = follow(console, supervisor, job, float(options["timeout"]))
            interrupted = False
        except StackError as exc:
            raise CommandError(str(exc)) from exc
        except KeyboardInterrupt:
            problem, interrupted = "interrupted", True
            connection.close()  # Ctrl-C may have cut a query short and left it unusable
        job.refresh_from_db()
        if not job.is_final:
            cancel_job(job.pk)
            job.refresh_from_db()
        return Outcome(job, time.monotonic() - started, interrupted, problem)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def follow(console: Console, supervisor: Supervisor, job: Job, timeout: float) -> str:
    """Show a progress bar until the job is final; return a problem, or "" if none."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task(f"job {job.pk}", total=None)

        def show(snapshot: JobProgress) -> None:
            stage = snapshot.process
            progress.update(
                bar,
                total=stage.total or None,
                completed=stage.done,
                description=(
                    f"job {job.pk} {snapshot.status}: {stage.detections} detections,"
                    f" {stage.failed} failed"
                ),
            )

        def child_died() -> str | None:
            dead = [c.name for c in supervisor.exited()]
            return f"child process exited early: {', '.join(dead)}" if dead else None

        try:
            wait_for_job_end(job.pk, timeout=timeout, on_progress=show, give_up=child_died)
        except WaitTimeout as exc:
            return str(exc)
    return ""


def print_summary(console: Console, outcome: Outcome, port: int, score: Score) -> None:
    job = outcome.job
    stage = JobStage.objects.get(job=job, key=StageKey.PROCESS)
    logs = JobLog.objects.filter(job=job)
    table = Table(title=f"Job {job.pk}: {job.name}", show_header=False)
    rows = [
        ("status", f"{job.status} {job.failure_reason}".strip()),
        ("images processed", f"{stage.processed} of {stage.total}"),
        ("images failed", str(stage.failed)),
        ("detections", f"{stage.detections} ({stage.classifications} classifications)"),
        ("precision (IoU>=0.5)", f"{score.precision:.3f}"),
        ("recall (IoU>=0.5)", f"{score.recall:.3f}"),
        ("label accuracy", f"{score.label_accuracy:.3f}"),
        ("log lines stored", str(logs.count())),
        ("error lines", str(logs.filter(level__gte=40).count())),
        ("wall time", f"{outcome.wall_time:.1f}s (job itself: {_job_seconds(job)})"),
        (
            "job page",
            f"http://127.0.0.1:{port}/jobs/{job.pk}/ (sign in as demo / demo; it stops"
            " with the demo: `ami demo --serve` keeps it up until Ctrl-C)",
        ),
    ]
    if outcome.problem:
        rows.insert(1, ("problem", outcome.problem))
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)


def _job_seconds(job: Job) -> str:
    if job.started_at and job.finished_at:
        return f"{(job.finished_at - job.started_at).total_seconds():.1f}s"
    return "-"
