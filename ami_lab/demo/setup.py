"""The demo's database side: project, images, pipeline, processing service, and scoring."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model

from ami.jobs.models import ImageTask, Job
from ami.main.models import Classification, Detection, Project, SourceImage
from ami.ml.models import Algorithm, Pipeline, ProcessingService
from ami_lab.demo import data as demo_data
from ami_lab.worker.model import (
    CLASSIFIER_KEY,
    CLASSIFIER_NAME,
    DETECTOR_KEY,
    DETECTOR_NAME,
    PIPELINE_NAME,
    PIPELINE_SLUG,
    iou,
)

DEMO_PROJECT = "Demo captures"
DEMO_USER = "demo"  # password too: for a local demo only
DEMO_FOLDER = "demo"  # under MEDIA_ROOT
DEMO_PIPELINE = PIPELINE_SLUG
DEMO_SEED = 2024
IOU_MATCH = 0.5


def demo_folder() -> Path:
    return Path(settings.MEDIA_ROOT) / DEMO_FOLDER


def ensure_images(count: int, seed: int = DEMO_SEED) -> Project:
    """Generate the images once and register them as the demo project's SourceImages."""
    demo_data.write_dataset(demo_folder(), count, seed)
    project, _ = Project.objects.get_or_create(name=DEMO_PROJECT)
    rows = []
    for index in range(count):
        name = demo_data.image_name(index)
        rows.append(
            SourceImage(
                project=project,
                path=f"{DEMO_FOLDER}/{name}",
                width=demo_data.WIDTH,
                height=demo_data.HEIGHT,
                size=(demo_folder() / name).stat().st_size,
            )
        )
    SourceImage.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
    return project


def ensure_demo_user(project: Project) -> None:
    """A local sign-in for the job pages: `demo` / `demo`, member of the demo project."""
    user, created = get_user_model().objects.get_or_create(username=DEMO_USER)
    if created:
        user.set_password(DEMO_USER)
        user.save(update_fields=["password"])
    project.members.add(user)


def ensure_pipeline() -> Pipeline:
    detector, _ = Algorithm.objects.get_or_create(
        key=DETECTOR_KEY, defaults={"name": DETECTOR_NAME, "task_type": "detection"}
    )
    classifier, _ = Algorithm.objects.get_or_create(
        key=CLASSIFIER_KEY,
        defaults={"name": CLASSIFIER_NAME, "task_type": "classification"},
    )
    pipeline, _ = Pipeline.objects.get_or_create(
        slug=DEMO_PIPELINE, defaults={"name": PIPELINE_NAME}
    )
    pipeline.algorithms.add(detector, classifier)
    return pipeline


def processing_key(name: str = "demo workers") -> str:
    """A fresh API key for the demo's processing services, which serve the demo project."""
    service, key = ProcessingService.create_with_key(name)
    service.projects.add(Project.objects.get_or_create(name=DEMO_PROJECT)[0])
    return key


@dataclass(frozen=True)
class Score:
    true_positives: int
    false_positives: int
    false_negatives: int
    labels_correct: int

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 0.0

    @property
    def recall(self) -> float:
        real = self.true_positives + self.false_negatives
        return self.true_positives / real if real else 0.0

    @property
    def label_accuracy(self) -> float:
        return self.labels_correct / self.true_positives if self.true_positives else 0.0


def evaluate(job: Job) -> Score:
    """Score the job's detections (IoU >= 0.5, greedy by score) against the ground truth."""
    truth = (demo_data.read_ground_truth(demo_folder()) or ((0, 0), {}))[1]
    images = dict(
        ImageTask.objects.filter(job=job).values_list("source_image_id", "source_image__path")
    )
    detections: dict[int, list[tuple]] = {}
    rows = Detection.objects.filter(source_image_id__in=images, algorithm__key=DETECTOR_KEY)
    for det in rows.values("pk", "source_image_id", "x1", "y1", "x2", "y2", "score"):
        box = (det["x1"], det["y1"], det["x2"], det["y2"])
        detections.setdefault(det["source_image_id"], []).append((det["score"], box, det["pk"]))
    labels = _top_labels([d[2] for dets in detections.values() for d in dets])
    tp = fp = fn = correct = 0
    for image_id, path in images.items():
        objects = truth.get(Path(path).name, [])
        unmatched = list(objects)
        for _score, box, pk in sorted(detections.get(image_id, []), reverse=True):
            best = max(unmatched, key=lambda t, b=box: iou(b, t.bbox), default=None)
            if best is None or iou(box, best.bbox) < IOU_MATCH:
                fp += 1
                continue
            unmatched.remove(best)
            tp += 1
            correct += labels.get(pk) == best.label
        fn += len(unmatched)
    return Score(tp, fp, fn, correct)


def _top_labels(detection_ids: list[int]) -> dict[int, str]:
    """Each detection's best-scoring label."""
    rows = Classification.objects.filter(
        detection_id__in=detection_ids, algorithm__key=CLASSIFIER_KEY
    ).order_by("detection_id", "-score")
    top: dict[int, str] = {}
    for detection_id, label in rows.values_list("detection_id", "label"):
        top.setdefault(detection_id, label)
    return top
