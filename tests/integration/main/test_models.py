"""Detections and classifications: unique per image, algorithm and box or label (PostgreSQL)."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from ami.main.models import Classification, Detection
from ami.ml.models import Algorithm


@pytest.mark.django_db
def test_detection_is_unique_per_image_algorithm_and_box(images):
    algorithm = Algorithm.objects.create(key="d", name="d", task_type="detection")
    box = {"x1": 1.0, "y1": 2.0, "x2": 3.0, "y2": 4.0}
    Detection.objects.create(source_image=images[0], algorithm=algorithm, **box)
    Detection.objects.bulk_create(
        [Detection(source_image=images[0], algorithm=algorithm, **box) for _ in range(3)],
        ignore_conflicts=True,
    )
    assert Detection.objects.count() == 1
    with pytest.raises(IntegrityError), transaction.atomic():
        Detection.objects.create(source_image=images[0], algorithm=algorithm, **box)


@pytest.mark.django_db
def test_classification_is_unique_per_detection_algorithm_and_label(images):
    algorithm = Algorithm.objects.create(key="c", name="c", task_type="classification")
    detection = Detection.objects.create(
        source_image=images[0], algorithm=algorithm, x1=0, y1=0, x2=1, y2=1
    )
    Classification.objects.create(detection=detection, algorithm=algorithm, label="moth", score=0.9)
    with pytest.raises(IntegrityError), transaction.atomic():
        Classification.objects.create(
            detection=detection, algorithm=algorithm, label="moth", score=0.8
        )
