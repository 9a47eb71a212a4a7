"""Deterministic synthetic capture images with known objects (no Django here).

Each image is a light "sheet" with a gentle lighting gradient and sensor noise, and a few
insects: rotated ellipses whose colour, size and shape depend on their class. The ground
truth (label and tight bounding box per object) is returned with the image, and
`write_dataset` keeps it in `ground_truth.json` next to the images.
Image `i` of seed `s` is always the same image.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

WIDTH, HEIGHT = 320, 240  # pixels
MAX_OBJECTS = 7
PLACEMENT_MARGIN = 6  # pixels between objects, so that no two touch
GROUND_TRUTH_FILE = "ground_truth.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ObjectClass:
    label: str
    color: tuple[int, int, int]
    radius_x: tuple[float, float]  # pixels, min and max semi-axis
    radius_y: tuple[float, float]


CLASSES = (
    ObjectClass("moth", (140, 95, 50), (13, 19), (8, 12)),
    ObjectClass("beetle", (40, 40, 48), (8, 11), (7, 10)),
    ObjectClass("lacewing", (70, 150, 60), (12, 16), (4, 6)),
    ObjectClass("wasp", (220, 120, 20), (9, 12), (5, 7)),
)


@dataclass(frozen=True)
class TruthBox:
    label: str
    x1: int
    y1: int
    x2: int
    y2: int

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        return (self.x1, self.y1, self.x2, self.y2)


def render(seed: int, index: int) -> tuple[np.ndarray, list[TruthBox]]:
    """Image `index` of dataset `seed` as an HxWx3 uint8 array, and its objects."""
    rng = np.random.default_rng([seed, index])
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    gx, gy = rng.uniform(-12, 12, size=2)
    base = 212 + gx * (xx / WIDTH - 0.5) + gy * (yy / HEIGHT - 0.5)
    canvas = np.repeat(base[:, :, None], 3, axis=2) + np.array([3, 0, -6], dtype=np.float32)
    truths: list[TruthBox] = []
    taken: list[tuple[int, int, int, int]] = []
    for _ in range(int(rng.integers(0, MAX_OBJECTS + 1))):
        cls = CLASSES[int(rng.integers(len(CLASSES)))]
        placed = _place(rng, cls, xx, yy, taken)
        if placed is None:
            continue
        mask, box = placed
        color = np.array(cls.color, dtype=np.float32) + rng.uniform(-12, 12, size=3)
        canvas[mask] = color
        taken.append(box)
        truths.append(TruthBox(cls.label, *box))
    canvas += rng.normal(0, 4, size=canvas.shape).astype(np.float32)
    return np.clip(canvas, 0, 255).astype(np.uint8), truths


def _place(rng, cls: ObjectClass, xx, yy, taken) -> tuple[np.ndarray, tuple] | None:
    for _attempt in range(20):
        rx, ry = rng.uniform(*cls.radius_x), rng.uniform(*cls.radius_y)
        angle = rng.uniform(0, math.pi)
        reach = max(rx, ry) + 2
        cx = rng.uniform(reach, WIDTH - reach)
        cy = rng.uniform(reach, HEIGHT - reach)
        cos, sin = math.cos(angle), math.sin(angle)
        u = ((xx - cx) * cos + (yy - cy) * sin) / rx
        v = (-(xx - cx) * sin + (yy - cy) * cos) / ry
        mask = u * u + v * v <= 1.0
        ys, xs = np.nonzero(mask)
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        if not any(_near(box, other) for other in taken):
            return mask, box
    return None


def _near(a: tuple, b: tuple) -> bool:
    m = PLACEMENT_MARGIN
    return not (a[2] + m <= b[0] or b[2] + m <= a[0] or a[3] + m <= b[1] or b[3] + m <= a[1])


def image_name(index: int) -> str:
    return f"capture_{index:05d}.jpg"


def write_dataset(folder: Path, count: int, seed: int = 2024) -> dict[str, list[TruthBox]]:
    """Write `count` images and `ground_truth.json` into folder, unless already there.

    Returns {file name: objects}. An existing dataset of the same seed and format with at
    least `count` images is reused (image `i` is the same whatever the count).
    """
    folder.mkdir(parents=True, exist_ok=True)
    existing = read_ground_truth(folder)
    if existing is not None and existing[0][0] == seed and existing[0][1] >= count:
        wanted = {image_name(index) for index in range(count)}
        return {name: objs for name, objs in existing[1].items() if name in wanted}
    truth: dict[str, list[TruthBox]] = {}
    for index in range(count):
        pixels, objects = render(seed, index)
        Image.fromarray(pixels).save(folder / image_name(index), quality=92)
        truth[image_name(index)] = objects
    document = {
        "version": FORMAT_VERSION,
        "seed": seed,
        "count": count,
        "images": {name: [asdict(obj) for obj in objs] for name, objs in truth.items()},
    }
    (folder / GROUND_TRUTH_FILE).write_text(json.dumps(document))
    return truth


def read_ground_truth(folder: Path) -> tuple[tuple[int, int], dict[str, list[TruthBox]]] | None:
    """((seed, count), {file name: objects}) from folder, or None if absent or outdated."""
    try:
        document = json.loads((folder / GROUND_TRUTH_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None
    if document.get("version") != FORMAT_VERSION:
        return None
    images = {name: [TruthBox(**obj) for obj in objs] for name, objs in document["images"].items()}
    if not all((folder / name).exists() for name in images):
        return None
    return (document["seed"], document["count"]), images
