"""What the job should have saved, computed independently of the system under test.

The bundled model is deterministic, so running it here on the job's images gives the
exact number of detections the processing workers must have posted and the result tasks
saved, whatever faults struck in between.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from django.conf import settings
from PIL import Image

from ami_lab.worker.model import BlobModel


@functools.cache  # every mode of a run uses the same images
def expected_detections(image_paths: tuple[str, ...]) -> int:
    """Detections the bundled model finds in these images (paths under MEDIA_ROOT)."""
    model = BlobModel()
    return sum(len(model.process(_load(path))) for path in image_paths)


def _load(relative: str) -> np.ndarray:
    # Decoded exactly as the processing worker decodes a downloaded image.
    with Image.open(Path(settings.MEDIA_ROOT) / relative) as image:
        return np.asarray(image.convert("RGB"))
