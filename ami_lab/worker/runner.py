"""The processing loop: reserve a batch, download and process its images, post the results."""

from __future__ import annotations

import io
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from PIL import Image, UnidentifiedImageError

from ami_lab.worker.client import ApiError, JobFinished, ProcessingClient, Stopping
from ami_lab.worker.model import Detection, Model

logger = logging.getLogger(__name__)

IDLE_POLL_MIN = 0.2  # seconds between reservations while the queue is empty
IDLE_POLL_MAX = 2.0  # seconds


@dataclass
class WorkerOptions:
    job_id: int
    batch: int = 8
    concurrency: int = 2
    inference_delay: float = 0.0  # seconds added per image (load tests)


@dataclass
class WorkerStats:
    batches: int = 0
    images: int = 0
    failed: int = 0


def pipeline_config(model: Model) -> dict:
    """The protocol's `PipelineConfigResponse` of a model."""
    return {
        "name": getattr(model, "pipeline_name", model.pipeline_slug),
        "slug": model.pipeline_slug,
        "version": 1,
        "algorithms": [
            {**model.detector_algorithm, "task_type": "detection", "version": 1},
            {**model.classifier_algorithm, "task_type": "classification", "version": 1},
        ],
        "stages": [],
    }


class Worker:
    def __init__(
        self, client: ProcessingClient, model: Model, options: WorkerOptions, stop: threading.Event
    ) -> None:
        self.client = client
        self.model = model
        self.options = options
        self.stop = stop
        self.stats = WorkerStats()

    def run(self) -> WorkerStats:
        """Work until the job is final or a stop is requested; finish the batch in hand."""
        self.register()
        idle = IDLE_POLL_MIN
        with ThreadPoolExecutor(self.options.concurrency, thread_name_prefix="image") as pool:
            while not self.stop.is_set():
                try:
                    tasks = self.client.reserve(self.options.job_id, self.options.batch)
                except JobFinished as exc:
                    logger.info("Job %s takes no more work: %s", self.options.job_id, exc)
                    break
                except Stopping:
                    break
                if not tasks:
                    if not self.job_is_open():
                        logger.info("Job %s is complete", self.options.job_id)
                        break
                    self.stop.wait(idle)
                    idle = min(idle * 2, IDLE_POLL_MAX)
                    continue
                idle = IDLE_POLL_MIN
                results = list(pool.map(self.process_task, tasks))
                self.post(results)
        return self.stats

    def job_is_open(self) -> bool:
        try:
            return self.client.open_job(self.options.job_id, self.model.pipeline_slug) is not None
        except Stopping:
            return False

    def register(self) -> None:
        """Register the model's pipeline with the job's project, as services do on start.

        Best effort, like the field's workers: a refusal is logged and work goes on.
        """
        try:
            job = self.client.open_job(self.options.job_id, self.model.pipeline_slug)
            if job is None:
                return
            summary = self.client.register(job["project"], [pipeline_config(self.model)])
        except (ApiError, JobFinished) as exc:
            logger.warning("Could not register pipeline %s: %s", self.model.pipeline_slug, exc)
            return
        logger.info("Registered pipeline %s: %s", self.model.pipeline_slug, summary)

    def post(self, results: list[dict]) -> None:
        try:
            self.client.post_results(self.options.job_id, results)
        except JobFinished as exc:
            logger.info("Results not taken, job is final: %s", exc)
            return
        failed = sum(1 for item in results if "error" in item["result"])
        self.stats.batches += 1
        self.stats.images += len(results)
        self.stats.failed += failed
        self.client.post_log(
            self.options.job_id,
            f"Posted batch {self.stats.batches}: {len(results)} results ({failed} failed)",
        )

    def process_task(self, task: dict) -> dict:
        """One task's result: `PipelineResultsResponse`, or the error that stopped the image."""
        image_id = task["image_id"]

        def failed(message: str) -> dict:
            return {
                "reply_subject": task["reply_subject"],
                "result": {"error": message, "image_id": image_id},
            }

        started = time.monotonic()
        try:
            image = self.load(task["image_url"])
        except (ApiError, UnidentifiedImageError, OSError) as exc:
            return failed(f"could not load image: {exc}")
        if self.options.inference_delay:
            time.sleep(self.options.inference_delay)
        try:
            detections = self.model.process(image)
        except Exception as exc:  # a pluggable model may fail any way: that image's error
            logger.warning("Model failed on image %s", image_id, exc_info=True)
            return failed(f"model failed: {exc!r}")
        result = {
            "pipeline": self.model.pipeline_slug,
            "algorithms": {},
            "total_time": time.monotonic() - started,
            "source_images": [{"id": image_id, "url": task["image_url"]}],
            "detections": [self.encode(image_id, d) for d in detections],
        }
        return {"reply_subject": task["reply_subject"], "result": result}

    def load(self, url: str) -> np.ndarray:
        with Image.open(io.BytesIO(self.client.download(url))) as image:
            return np.asarray(image.convert("RGB"))

    def encode(self, image_id: str, detection: Detection) -> dict:
        """A `DetectionResponse`: one terminal classification with every ranked label."""
        x1, y1, x2, y2 = detection.bbox
        now = datetime.now(UTC).isoformat()
        classifications = []
        if detection.classifications:
            ranked = detection.classifications
            classifications.append(
                {
                    "classification": ranked[0].label,
                    "labels": [c.label for c in ranked],
                    "scores": [c.score for c in ranked],
                    "algorithm": self.model.classifier_algorithm,
                    "terminal": True,
                    "timestamp": now,
                }
            )
        return {
            "source_image_id": image_id,
            "bbox": {"x1": x1, "y1": y1, "x2": x2, "y2": y2},
            "algorithm": self.model.detector_algorithm,
            "timestamp": now,
            "classifications": classifications,
        }
