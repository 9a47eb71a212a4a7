"""`ami bench results`: results processed per second by `process_nats_pipeline_result`.

Starts a job over the demo images, reserves every task from NATS, queues one result per
image (the ground-truth boxes, as a perfect zero-delay model would post them) and lets a
Celery worker subprocess on `ml_results` save, count and ack them. The rate is measured
between the first and the last committed result (worker start-up is not counted).
"""

from __future__ import annotations

import os
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Max, Min

from ami.jobs.lifecycle import create_job
from ami.jobs.locking import transition
from ami.jobs.models import ImageTask, Job, JobStage
from ami.jobs.states import JobStatus, StageKey
from ami.main.models import SourceImage
from ami.ml.orchestration import dispatch, nats
from ami.ml.tasks import process_nats_pipeline_result
from ami_lab.demo import data as demo_data
from ami_lab.demo.setup import demo_folder, ensure_images, ensure_pipeline
from ami_lab.jobs import wait_for_job_end
from ami_lab.processes import WaitTimeout, celery_worker_command
from ami_lab.servers.paths import run_dir
from ami_lab.supervisor import Supervisor
from ami_lab.worker.model import CLASSIFIER_KEY, DETECTOR_KEY


class Command(BaseCommand):
    help = "Measure results processed per second (zero inference delay)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--images", type=int, default=742)
        parser.add_argument("--concurrency", type=int, default=8, help="Celery processes")
        parser.add_argument("--timeout", type=float, default=600.0, help="seconds")

    def handle(self, *args: object, **options: object) -> None:
        count, concurrency = int(options["images"]), int(options["concurrency"])
        project = ensure_images(count)
        pipeline = ensure_pipeline()
        job = create_job(project, pipeline, f"Benchmark: {count} results", {"limit": count})
        transition(job.pk, JobStatus.PENDING)
        dispatch.collect_and_publish(job.pk)
        results = build_results(job.pk)
        with Supervisor(run_dir() / "bench", {**os.environ, "PYTHONUNBUFFERED": "1"}) as sup:
            worker = celery_worker_command(
                "ml_results", concurrency, f"bench-{os.getpid()}", loglevel="WARNING"
            )
            sup.start("celery-results", worker)
            for result in results:
                process_nats_pipeline_result.apply_async(
                    args=[job.pk, result, result["reply_subject"]]
                )
            try:
                wait_for_job_end(job.pk, timeout=float(options["timeout"]))
            except WaitTimeout as exc:
                raise CommandError(str(exc)) from exc
        job.refresh_from_db()
        self.report(job, concurrency)

    def report(self, job: Job, concurrency: int) -> None:
        span = ImageTask.objects.filter(job=job).aggregate(
            first=Min("updated_at"), last=Max("updated_at")
        )
        stage = JobStage.objects.get(job=job, key=StageKey.PROCESS)
        seconds = (span["last"] - span["first"]).total_seconds()
        rate = (stage.processed + stage.failed - 1) / seconds if seconds > 0 else float("nan")
        self.stdout.write(
            f"job {job.pk} {job.status}: {stage.processed} results saved"
            f" ({stage.detections} detections, {stage.classifications} classifications)"
            f" by {concurrency} Celery processes in {seconds:.2f}s"
            f" -> {rate:.1f} results/s"
        )


def build_results(job_id: int) -> list[dict]:
    """One result per reserved task: the image's true objects as detections."""
    truth = (demo_data.read_ground_truth(demo_folder()) or ((0, 0), {}))[1]
    paths = dict(SourceImage.objects.values_list("pk", "path"))
    results = []
    while batch := nats.reserve(job_id, 100):
        for task in batch:
            objects = truth.get(Path(paths[task.payload["image_id"]]).name, [])
            detections = [
                {
                    "bbox": {"x1": o.x1, "y1": o.y1, "x2": o.x2, "y2": o.y2},
                    "score": 1.0,
                    "algorithm": DETECTOR_KEY,
                    "classifications": [
                        {"label": o.label, "score": 1.0, "algorithm": CLASSIFIER_KEY}
                    ],
                }
                for o in objects
            ]
            results.append(
                {
                    "image_id": task.payload["image_id"],
                    "reply_subject": task.reply_subject,
                    "detections": detections,
                }
            )
    return results
