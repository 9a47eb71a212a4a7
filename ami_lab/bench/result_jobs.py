"""Jobs for the result benchmarks: a project of its own, fresh images, reserved results.

The benchmarks insert detections. An image keeps the detections of every earlier run (the
unique box constraint then turns the INSERTs into no-ops), so each run starts by deleting
the detections of its own project's images: every run measures real inserts. The project is
the bench's own (same image files as the demo), so the demo's results are never touched.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ami.jobs.lifecycle import create_job
from ami.jobs.locking import transition
from ami.jobs.models import Job
from ami.jobs.states import JobStatus
from ami.main.models import Detection, Project, SourceImage
from ami.ml.models import Pipeline
from ami.ml.orchestration import dispatch, nats
from ami_lab.demo import data as demo_data
from ami_lab.demo.setup import demo_folder, ensure_images, ensure_pipeline
from ami_lab.worker.model import CLASSIFIER_KEY, DETECTOR_KEY

Box = tuple[float, float, float, float]


def bench_project(name: str, paths: list[str]) -> Project:
    """The project `name` with one image per path, and no detections on any of them."""
    project, _ = Project.objects.get_or_create(name=name)
    SourceImage.objects.bulk_create(
        [SourceImage(project=project, path=path) for path in paths],
        ignore_conflicts=True,
        batch_size=1000,
    )
    Detection.objects.filter(source_image__project=project).delete()
    return project


def demo_image_project(name: str, count: int) -> Project:
    """A bench project over the first `count` demo images (generated once, shared)."""
    demo = ensure_images(count)
    paths = list(demo.images.order_by("path").values_list("path", flat=True)[:count])
    return bench_project(name, paths)


def start_job(project: Project, count: int, pipeline: Pipeline | None = None) -> Job:
    """Create a job over `count` images of the project, collected and published to NATS."""
    job = create_job(
        project, pipeline or ensure_pipeline(), f"Benchmark: {count} results", {"limit": count}
    )
    transition(job.pk, JobStatus.PENDING)
    dispatch.collect_and_publish(job.pk)
    job.refresh_from_db()
    return job


def result_dict(image_id: int, reply_subject: str, boxes: list[tuple[Box, str]]) -> dict:
    """A `PipelineResult` dict: one detection per box, each with its one label."""
    return {
        "image_id": image_id,
        "reply_subject": reply_subject,
        "detections": [
            {
                "bbox": {"x1": box[0], "y1": box[1], "x2": box[2], "y2": box[3]},
                "score": 1.0,
                "algorithm": DETECTOR_KEY,
                "classifications": [{"label": label, "score": 1.0, "algorithm": CLASSIFIER_KEY}],
            }
            for box, label in boxes
        ],
    }


def ground_truth() -> Callable[[str], list[tuple[Box, str]]]:
    """Image path -> its true objects (box, label), as a perfect model would post them."""
    truth = (demo_data.read_ground_truth(demo_folder()) or ((0, 0), {}))[1]

    def objects(path: str) -> list[tuple[Box, str]]:
        return [((o.x1, o.y1, o.x2, o.y2), o.label) for o in truth.get(Path(path).name, [])]

    return objects


def reserved_results(job_id: int) -> list[dict]:
    """Reserve every task of the job from NATS; one ground-truth result per task."""
    objects = ground_truth()
    paths = dict(SourceImage.objects.filter(project__jobs=job_id).values_list("pk", "path"))
    results = []
    while batch := nats.reserve(job_id, 100):
        for task in batch:
            image_id = task.payload["image_id"]
            results.append(result_dict(image_id, task.reply_subject, objects(paths[image_id])))
    return results
