"""Pluggable models for the processing service, and the bundled CPU model.

A model is any class with `pipeline_slug` (the pipeline it runs), `detector_algorithm` and
`classifier_algorithm` (the protocol's algorithm references, `{"name", "key"}`) and
`process(image) -> list[Detection]`, where `image` is an HxWx3 uint8 numpy array. Choose
one with `ami worker --model package.module:ClassName`.

The bundled `BlobModel` finds insects on a light sheet: it fits the sheet's lighting as a
plane, thresholds what is darker than it, splits the mask into connected components, and
classifies each component by nearest centroid over colour, size and elongation. The
centroids are fitted at start-up on labelled synthetic images (`ami_lab.demo.data`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from scipy import ndimage

from ami_lab.demo import data as demo_data

PIPELINE_SLUG = "blob-demo"
PIPELINE_NAME = "Blob detector + nearest-centroid classifier"
DETECTOR_KEY = "blob-detector"
DETECTOR_NAME = "Blob detector"
CLASSIFIER_KEY = "centroid-classifier"
CLASSIFIER_NAME = "Nearest-centroid classifier"
DARKNESS_THRESHOLD = 40.0  # grey levels below the fitted sheet
MIN_AREA = 25  # pixels; smaller components are noise
TRAINING_SEED = 99
TRAINING_IMAGES = 40


@dataclass(frozen=True)
class Classified:
    label: str
    score: float


@dataclass(frozen=True)
class Detection:
    bbox: tuple[float, float, float, float]
    score: float
    classifications: list[Classified] = field(default_factory=list)


class Model(Protocol):
    pipeline_slug: str
    detector_algorithm: dict[str, str]
    classifier_algorithm: dict[str, str]

    def process(self, image: np.ndarray) -> list[Detection]: ...


def load_model(path: str) -> Model:
    """Instantiate `package.module:ClassName`."""
    module_name, _, class_name = path.partition(":")
    return getattr(importlib.import_module(module_name), class_name)()


# -- segmentation ----------------------------------------------------------------------------
def _sheet(gray: np.ndarray) -> np.ndarray:
    """Fit the sheet's brightness as a plane, ignoring dark pixels on the second pass."""
    h, w = gray.shape
    yy, xx = np.mgrid[0:h, 0:w]
    design = np.stack([np.ones(h * w), xx.ravel() / w, yy.ravel() / h], axis=1)
    values = gray.ravel()
    keep = np.ones(values.shape, dtype=bool)
    for _ in range(2):
        coef, *_ = np.linalg.lstsq(design[keep], values[keep], rcond=None)
        plane = design @ coef
        keep = values > plane - DARKNESS_THRESHOLD / 2
    return plane.reshape(h, w)


def segment(image: np.ndarray) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
    """Connected dark components: [(bbox x1,y1,x2,y2, mask within the bbox)]."""
    gray = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    mask = (_sheet(gray) - gray) > DARKNESS_THRESHOLD
    mask = ndimage.binary_opening(mask)
    labels, _count = ndimage.label(mask)
    found = []
    for index, window in enumerate(ndimage.find_objects(labels), start=1):
        if window is None:
            continue
        component = labels[window] == index
        if component.sum() < MIN_AREA:
            continue
        ys, xs = window
        found.append(((xs.start, ys.start, xs.stop, ys.stop), component))
    return found


def features(image: np.ndarray, bbox: tuple[int, int, int, int], mask: np.ndarray) -> np.ndarray:
    """Mean colour (3), log area and elongation of one component."""
    x1, y1, x2, y2 = bbox
    pixels = image[y1:y2, x1:x2][mask].astype(np.float32)
    ys, xs = np.nonzero(mask)
    eigen = np.linalg.eigvalsh(np.cov(np.stack([xs, ys]).astype(np.float64)) + 1e-6 * np.eye(2))
    elongation = float(np.sqrt(eigen[1] / max(eigen[0], 1e-6)))
    return np.array([*pixels.mean(axis=0), np.log(mask.sum()) * 40, elongation * 40])


# -- classification ---------------------------------------------------------------------------
def iou(a: tuple, b: tuple) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class NearestCentroid:
    def __init__(self, samples: dict[str, list[np.ndarray]]) -> None:
        self.labels = sorted(samples)
        stacked = np.concatenate([np.stack(samples[label]) for label in self.labels])
        self.mean = stacked.mean(axis=0)
        self.scale = stacked.std(axis=0) + 1e-6
        self.centroids = np.stack(
            [self.normalize(np.stack(samples[label])).mean(axis=0) for label in self.labels]
        )

    def normalize(self, vectors: np.ndarray) -> np.ndarray:
        return (vectors - self.mean) / self.scale

    def predict(self, vector: np.ndarray) -> list[Classified]:
        """All labels, best first, with softmax scores over negative squared distances."""
        distance = ((self.normalize(vector) - self.centroids) ** 2).sum(axis=1)
        weights = np.exp(-(distance - distance.min()) / 2)
        scores = weights / weights.sum()
        order = np.argsort(-scores)
        return [Classified(self.labels[i], round(float(scores[i]), 4)) for i in order]


def training_samples(seed: int = TRAINING_SEED, count: int = TRAINING_IMAGES) -> dict:
    """Features of segmented components matched (IoU >= 0.5) to their true labels."""
    samples: dict[str, list[np.ndarray]] = {}
    for index in range(count):
        image, truths = demo_data.render(seed, index)
        for bbox, mask in segment(image):
            best = max(truths, key=lambda t: iou(bbox, t.bbox), default=None)
            if best is not None and iou(bbox, best.bbox) >= 0.5:
                samples.setdefault(best.label, []).append(features(image, bbox, mask))
    return samples


class BlobModel:
    """Threshold + connected components + nearest-centroid classifier (CPU, numpy/scipy)."""

    pipeline_slug = PIPELINE_SLUG
    pipeline_name = PIPELINE_NAME
    detector_algorithm = {"name": DETECTOR_NAME, "key": DETECTOR_KEY}
    classifier_algorithm = {"name": CLASSIFIER_NAME, "key": CLASSIFIER_KEY}

    def __init__(self) -> None:
        self.classifier = NearestCentroid(training_samples())

    def process(self, image: np.ndarray) -> list[Detection]:
        detections = []
        for bbox, mask in segment(image):
            ranked = self.classifier.predict(features(image, bbox, mask))
            detections.append(
                Detection(
                    bbox=tuple(float(v) for v in bbox),
                    score=round(float(min(1.0, mask.mean() + 0.2)), 4),
                    classifications=ranked[:2],
                )
            )
        return detections
