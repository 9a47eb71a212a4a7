"""Pipelines and the algorithms they run."""

from __future__ import annotations

from django.db import models


class Algorithm(models.Model):
    class TaskType(models.TextChoices):
        DETECTION = "detection"
        CLASSIFICATION = "classification"

    key = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    version = models.CharField(max_length=50, default="1")
    task_type = models.CharField(max_length=20, choices=TaskType.choices)

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class Pipeline(models.Model):
    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    algorithms = models.ManyToManyField(Algorithm, related_name="pipelines")

    def __str__(self) -> str:
        return self.name
