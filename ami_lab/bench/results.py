"""`ami bench results`: results saved per second by the `save_results` task, and its costs.

Starts a job over the demo images (a bench project of its own), reserves every task from
NATS, and queues the ground-truth results (3.5 detections per image, as a perfect zero-delay
model would post them) as `save_results` tasks of `--batch` results each, as the API queues
a processing service's post. A Celery worker subprocess on `ml_results` saves, counts and
acks them. Reported, from the same run:
- results/s between the first and the last committed result (worker start-up not counted);
- whether the stage counters equal what was sent (`exact`; the command fails if not);
- CPU milliseconds per result in the worker's process tree (`ami_lab.bench.cpu`);
- SQL statements per result of the save path (`ami_lab.bench.sql_count`);
- the ceiling: a plain COPY of the same rows (`ami_lab.bench.results_ceiling`), and the
  ratio of the rate to it.
"""

from __future__ import annotations

import json
import os

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Max, Min

from ami.celery import app
from ami.jobs.models import ImageTask, Job, JobStage
from ami.jobs.states import StageKey
from ami.ml.tasks import save_results
from ami_lab.bench.cpu import tree_cpu_seconds
from ami_lab.bench.result_jobs import (
    demo_image_project,
    reserved_results,
    start_job,
)
from ami_lab.bench.results_ceiling import copy_ceiling
from ami_lab.bench.sql_count import BATCHES, count_statements
from ami_lab.jobs import wait_for_job_end
from ami_lab.processes import WaitTimeout, celery_worker_command, poll_until
from ami_lab.servers.paths import run_dir
from ami_lab.supervisor import Supervisor

PROJECT = "Benchmark: results"
DEFAULT_CONCURRENCY = 2  # measured best of 2, 4 and 8 on 2 cores (docs/benchmarks.md)
WORKER_READY_TIMEOUT = 60.0  # seconds


class Command(BaseCommand):
    help = "Measure results saved per second (zero inference delay), and their costs."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--images", type=int, default=742)
        parser.add_argument("--batch", type=int, default=16, help="results per task")
        parser.add_argument(
            "--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="Celery processes"
        )
        parser.add_argument("--timeout", type=float, default=600.0, help="seconds")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args: object, **options: object) -> None:
        count, batch = int(options["images"]), int(options["batch"])
        concurrency = int(options["concurrency"])
        if count < 1 or batch < 1 or concurrency < 1:
            raise CommandError("--images, --batch and --concurrency must be at least 1")
        project = demo_image_project(PROJECT, max(count, BATCHES * batch))
        sql = count_statements(project, batch)
        project = demo_image_project(PROJECT, max(count, BATCHES * batch))  # fresh inserts
        job = start_job(project, count)
        results = reserved_results(job.pk)
        ceiling = copy_ceiling(results)
        cpu = self.run_worker(job.pk, results, batch, concurrency, float(options["timeout"]))
        figures = measure(job.pk, results, batch, concurrency, cpu, sql, ceiling)
        if options["json"]:
            self.stdout.write(json.dumps(figures))
        else:
            self.stdout.write(describe(figures))
        if not figures["exact"]:
            raise CommandError("the stage counters differ from what was sent")

    def run_worker(
        self, job_id: int, results: list[dict], batch: int, concurrency: int, timeout: float
    ) -> float:
        """Queue the batches to a fresh worker; return its tree's CPU seconds over the run."""
        name = f"bench-{os.getpid()}"
        with Supervisor(run_dir() / "bench", {**os.environ, "PYTHONUNBUFFERED": "1"}) as sup:
            worker = sup.start(
                "celery-results",
                celery_worker_command("ml_results", concurrency, name, loglevel="WARNING"),
            )
            try:
                poll_until(
                    lambda: _answers(name),
                    timeout=WORKER_READY_TIMEOUT,
                    what="the Celery worker to answer a ping",
                    give_up=lambda: "the worker exited" if sup.exited() else None,
                )
                before = tree_cpu_seconds(worker.process.pid)
                for start in range(0, len(results), batch):
                    save_results.apply_async(args=[job_id, results[start : start + batch]])
                wait_for_job_end(job_id, timeout=timeout)
                return tree_cpu_seconds(worker.process.pid) - before
            except WaitTimeout as exc:
                raise CommandError(str(exc)) from exc


def _answers(name: str) -> bool:
    replies = app.control.ping(timeout=0.5)
    return any(node.startswith(f"{name}@") for reply in replies for node in reply)


def measure(
    job_id: int,
    results: list[dict],
    batch: int,
    concurrency: int,
    cpu_seconds: float,
    sql: dict,
    ceiling: dict,
) -> dict:
    """The figures of a finished run, as one JSON-ready dict."""
    job = Job.objects.get(pk=job_id)
    span = ImageTask.objects.filter(job_id=job_id).aggregate(
        first=Min("updated_at"), last=Max("updated_at")
    )
    seconds = (span["last"] - span["first"]).total_seconds()
    stage = JobStage.objects.get(job_id=job_id, key=StageKey.PROCESS)
    counted = stage.processed + stage.failed
    # `updated_at` is now(), the start of each batch's transaction: the span runs from the
    # first batch's start to the last's, so one batch's results are not in it.
    rate = (counted - min(batch, counted)) / seconds if seconds > 0 else None
    sent = {
        "processed": len(results),
        "failed": 0,
        "detections": sum(len(r["detections"]) for r in results),
        "classifications": sum(len(d["classifications"]) for r in results for d in r["detections"]),
    }
    stored = {key: getattr(stage, key) for key in sent}
    return {
        "job_id": job_id,
        "status": job.status,
        "images": len(results),
        "batch": batch,
        "concurrency": concurrency,
        "seconds": round(seconds, 3),
        "results_per_s": round(rate, 1) if rate else None,
        "exact": stored == sent,
        "sent": sent,
        "stored": stored,
        "cpu_ms_per_result": round(1000 * cpu_seconds / len(results), 2),
        "sql_per_result": sql["per_result"],
        "sql": sql,
        "copy_ceiling": ceiling,
        "ratio_to_ceiling": (
            round(rate / ceiling["results_per_s"], 4) if rate and ceiling["results_per_s"] else None
        ),
        "loadavg": _loadavg(),
    }


def _loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def describe(f: dict) -> str:
    """The figures as a few human lines."""
    sent, ceiling = f["sent"], f["copy_ceiling"]
    return "\n".join(
        [
            f"job {f['job_id']} {f['status']}: {f['images']} results in batches of {f['batch']}"
            f" ({sent['detections']} detections, {sent['classifications']} classifications)"
            f" by {f['concurrency']} Celery processes in {f['seconds']:.2f}s"
            f" -> {f['results_per_s']} results/s",
            f"counters exact: {str(f['exact']).lower()} (stored {f['stored']})",
            f"CPU per result in the result workers: {f['cpu_ms_per_result']} ms",
            f"SQL statements per result: {f['sql_per_result']}"
            f" (per batch of {f['batch']}: {f['sql']['statements_per_batch']})",
            f"COPY ceiling: {ceiling['results_per_s']} results/s ({ceiling['detections']}"
            f" detections + {ceiling['classifications']} classifications in"
            f" {ceiling['seconds']}s); rate / ceiling = {f['ratio_to_ceiling']}",
            f"load average: {f['loadavg']}",
        ]
    )
