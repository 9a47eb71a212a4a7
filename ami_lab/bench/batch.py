"""`ami bench batch`: the server's peak memory while it takes one huge result post.

Real clients post batches of 110-142 MB (each classification carries scores and logits for
thousands of taxa). This writes a valid batch of `--megabytes` for a started job (streamed
to a file, one result at a time), posts it to a real uvicorn process with the protocol's
`Api-Key`, and reports the server's resident memory before the post and its peak during
it (sampled, and the kernel's high-water mark `VmHWM`).
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ami.jobs.lifecycle import cancel_job, create_job
from ami.jobs.locking import transition
from ami.jobs.states import JobStatus
from ami.ml.models import Pipeline, ProcessingService
from ami.ml.orchestration import dispatch, nats
from ami_lab.demo.setup import ensure_images, ensure_pipeline
from ami_lab.live_server import uvicorn_server
from ami_lab.servers.paths import run_dir

MB = 1024 * 1024
CATEGORIES = 2_000  # scores and logits per classification, as a large regional model sends
SAMPLE_INTERVAL = 0.02  # seconds between RSS samples
POST_TIMEOUT = 600.0  # seconds


@dataclass
class Algorithms:
    pipeline: str  # slug
    detector: dict[str, str]  # {"name", "key"}
    classifier: dict[str, str]


@dataclass
class Measurement:
    status: int
    body: dict
    size: int  # bytes posted
    seconds: float
    rss_before: int  # bytes
    peak_sampled: int
    peak_hwm: int

    @property
    def growth(self) -> int:
        """Peak resident memory above the resident memory before the post, in bytes."""
        return max(self.peak_sampled, self.peak_hwm) - self.rss_before

    def summary(self) -> str:
        return (
            f"posted {self.size / MB:.1f} MB of results in {self.seconds:.1f}s -> HTTP"
            f" {self.status} {self.body.get('results_queued', self.body)} results queued;"
            f" server RSS {self.rss_before / MB:.0f} MB before, peak"
            f" {max(self.peak_sampled, self.peak_hwm) / MB:.0f} MB"
            f" -> growth {self.growth / MB:.1f} MB"
        )


def algorithms_of(pipeline: Pipeline) -> Algorithms:
    """The pipeline's slug and its first detection and classification algorithms."""
    algorithms = list(pipeline.algorithms.order_by("pk"))
    detector = next(a for a in algorithms if a.task_type == "detection")
    classifier = next(a for a in algorithms if a.task_type == "classification")
    return Algorithms(
        pipeline=pipeline.slug,
        detector={"name": detector.name, "key": detector.key},
        classifier={"name": classifier.name, "key": classifier.key},
    )


def write_batch(path: Path, tasks: dict[int, str], algorithms: Algorithms, size: int) -> int:
    """Write a valid `{"results": [...]}` of about `size` bytes, one result per task, each
    with as many detections as it takes; return the bytes written."""
    rng = random.Random(0)
    classification = json.dumps(
        {
            "classification": "moth",
            "labels": None,
            "scores": [round(rng.random(), 6) for _ in range(CATEGORIES)],
            "logits": [round(rng.uniform(-8, 8), 5) for _ in range(CATEGORIES)],
            "algorithm": algorithms.classifier,
            "terminal": True,
            "timestamp": "2026-11-29T10:00:00Z",
        }
    )
    detector = json.dumps(algorithms.detector)
    per_result = max(1, size // max(1, len(tasks)))
    per_detection = len(classification) + 250
    detections = max(1, per_result // per_detection)
    with path.open("w", encoding="utf-8") as out:
        out.write('{"results": [')
        for n, (image_id, reply_subject) in enumerate(sorted(tasks.items())):
            out.write(", " if n else "")
            out.write(
                json.dumps({"reply_subject": reply_subject})[:-1]
                + ', "result": {"pipeline": '
                + json.dumps(algorithms.pipeline)
                + ', "algorithms": {}, "total_time": 1.5'
                + f', "source_images": [{{"id": "{image_id}"}}]'
                + ', "detections": ['
            )
            for i in range(detections):
                out.write(", " if i else "")
                x = float(i % 1000)
                out.write(
                    f'{{"source_image_id": "{image_id}", "bbox": {{"x1": {x}, "y1": 1.0,'
                    f' "x2": {x + 9}, "y2": 12.5}}, "algorithm": {detector},'
                    f' "classifications": [{classification}]}}'
                )
            out.write("]}}")
        out.write('], "client_info": {"hostname": "bench", "software": "ami bench batch"}}')
    return path.stat().st_size


def rss_high_water_mark(pid: int) -> int:
    """The process's peak resident memory so far (`VmHWM`), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def post_and_measure(base: str, pid: int, key: str, job_id: int, path: Path) -> Measurement:
    """POST the batch file to the server at `base` (process `pid`), sampling its memory."""
    process = psutil.Process(pid)
    rss_before = process.memory_info().rss
    hwm_before = rss_high_water_mark(pid)
    peak, done = [rss_before], threading.Event()

    def sample() -> None:
        while not done.wait(SAMPLE_INTERVAL):
            peak[0] = max(peak[0], process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    size = path.stat().st_size
    started = time.monotonic()
    try:
        with path.open("rb") as body:
            response = httpx.post(
                f"{base}/api/v2/jobs/{job_id}/result/",
                content=body,
                headers={
                    "Authorization": f"Api-Key {key}",
                    "Content-Type": "application/json",
                    "Content-Length": str(size),
                },
                timeout=POST_TIMEOUT,
            )
    finally:
        done.set()
        sampler.join()
    seconds = time.monotonic() - started
    hwm_after = rss_high_water_mark(pid)
    try:
        answer = response.json()
    except ValueError:
        answer = {"detail": response.text[:300]}
    return Measurement(
        status=response.status_code,
        body=answer,
        size=size,
        seconds=seconds,
        rss_before=rss_before,
        peak_sampled=peak[0],
        # The kernel's mark counts only if the post raised it (else it is the start-up's).
        peak_hwm=hwm_after if hwm_after > hwm_before else rss_before,
    )


def reserve_tasks(job_id: int) -> dict[int, str]:
    """Reserve every task of a started job: image id -> reply subject."""
    tasks: dict[int, str] = {}
    while batch := nats.reserve(job_id, 100):
        tasks.update({t.payload["image_id"]: t.reply_subject for t in batch})
    return tasks


class Command(BaseCommand):
    help = "Measure the web server's peak memory while it takes one huge result post."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--megabytes", type=int, default=150, help="size of the batch")
        parser.add_argument("--images", type=int, default=100, help="results in the batch")

    def handle(self, *args: object, **options: object) -> None:
        images, size = int(options["images"]), int(options["megabytes"]) * MB
        project = ensure_images(images)
        pipeline = ensure_pipeline()
        name = f"Benchmark: a {size // MB} MB batch"
        job = create_job(project, pipeline, name, {"limit": images})
        transition(job.pk, JobStatus.PENDING)
        dispatch.collect_and_publish(job.pk)
        service, key = ProcessingService.create_with_key(f"bench batch {job.pk}")
        folder = run_dir() / "bench"
        folder.mkdir(parents=True, exist_ok=True)
        try:
            with tempfile.TemporaryDirectory(dir=folder) as scratch:
                path = Path(scratch) / "batch.json"
                written = write_batch(path, reserve_tasks(job.pk), algorithms_of(pipeline), size)
                self.stdout.write(f"wrote a batch of {written / MB:.1f} MB ({images} results)")
                with uvicorn_server(dict(os.environ), folder / "batch-server.log") as (base, pid):
                    measured = post_and_measure(base, pid, key, job.pk, path)
        finally:
            cancel_job(job.pk)
            nats.delete_queue(job.pk)
            ProcessingService.objects.filter(pk=service.pk).update(is_active=False)
        self.stdout.write(measured.summary())
        if measured.status != 200:
            raise CommandError(f"the post was refused: {measured.body}")
