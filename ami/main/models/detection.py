"""Results of processing: detections and their classifications.

Saving a result is idempotent by database constraint: the same detection (image,
algorithm, bounding box) or classification (detection, algorithm, label) can be inserted
any number of times with ON CONFLICT DO NOTHING and exists once.
"""

from __future__ import annotations

from django.db import models


class Detection(models.Model):
    source_image = models.ForeignKey(
        "main.SourceImage", on_delete=models.CASCADE, related_name="detections"
    )
    algorithm = models.ForeignKey(
        "ml.Algorithm", on_delete=models.PROTECT, related_name="detections"
    )
    x1 = models.FloatField()
    y1 = models.FloatField()
    x2 = models.FloatField()
    y2 = models.FloatField()
    score = models.FloatField(default=1.0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source_image", "algorithm", "x1", "y1", "x2", "y2"],
                name="unique_detection_per_box",
            ),
        ]

    def __str__(self) -> str:
        return f"Detection {self.bbox} on image {self.source_image_id}"

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)


class Classification(models.Model):
    detection = models.ForeignKey(
        Detection, on_delete=models.CASCADE, related_name="classifications"
    )
    algorithm = models.ForeignKey(
        "ml.Algorithm", on_delete=models.PROTECT, related_name="classifications"
    )
    label = models.CharField(max_length=200)
    score = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["detection", "algorithm", "label"],
                name="unique_classification_label",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.label} ({self.score:.2f})"
