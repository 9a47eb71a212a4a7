"""The processing loop: reserve a batch, download and process its images, post the results."""

from __future__ import annotations

import io
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

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
                    self.stop.wait(idle)
                    idle = min(idle * 2, IDLE_POLL_MAX)
                    continue
                idle = IDLE_POLL_MIN
                results = list(pool.map(self.process_task, tasks))
                self.post(results)
        return self.stats

    def post(self, results: list[dict]) -> None:
        try:
            self.client.post_results(self.options.job_id, results)
        except JobFinished as exc:
            logger.info("Results not taken, job is final: %s", exc)
            return
        self.stats.batches += 1
        self.stats.images += len(results)
        self.stats.failed += sum(1 for result in results if "error" in result)

    def process_task(self, task: dict) -> dict:
        """One task's result: detections, or the error that stopped this image."""
        base = {"image_id": task["image_id"], "reply_subject": task["reply_subject"]}
        try:
            image = self.load(task["image_url"])
        except (ApiError, UnidentifiedImageError, OSError) as exc:
            return {**base, "error": f"could not load image: {exc}"}
        if self.options.inference_delay:
            time.sleep(self.options.inference_delay)
        try:
            detections = self.model.process(image)
        except Exception as exc:  # a pluggable model may fail any way: that image's error
            logger.warning("Model failed on image %s", task["image_id"], exc_info=True)
            return {**base, "error": f"model failed: {exc!r}"}
        return {**base, "detections": [self.encode(d) for d in detections]}

    def load(self, url: str) -> np.ndarray:
        with Image.open(io.BytesIO(self.client.download(url))) as image:
            return np.asarray(image.convert("RGB"))

    def encode(self, detection: Detection) -> dict:
        x1, y1, x2, y2 = detection.bbox
        return {
            "bbox": {"x1": x1, "y1": y1, "x2": x2, "y2": y2},
            "score": detection.score,
            "algorithm": self.model.detector_key,
            "classifications": [
                {"label": c.label, "score": c.score, "algorithm": self.model.classifier_key}
                for c in detection.classifications
            ],
        }
