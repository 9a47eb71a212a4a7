from __future__ import annotations

from django.db import models


class SourceImage(models.Model):
    """One capture: an image file that processing services fetch by URL."""

    project = models.ForeignKey("main.Project", on_delete=models.CASCADE, related_name="images")
    path = models.CharField(max_length=500, help_text="Path relative to MEDIA_ROOT")
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    size = models.PositiveBigIntegerField(null=True, blank=True, help_text="bytes")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "path"], name="unique_image_path"),
        ]

    def __str__(self) -> str:
        return self.path
