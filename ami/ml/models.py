"""Pipelines, the algorithms they run, and the processing services that run them."""

from __future__ import annotations

import hashlib
import secrets

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


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ProcessingService(models.Model):
    """An external worker allowed to reserve tasks and post results, by its bearer token.

    Only the token's SHA-256 is stored; the token itself is shown once, at creation.
    """

    name = models.CharField(max_length=200, unique=True)
    token_hash = models.CharField(max_length=64, unique=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name

    @classmethod
    def create_with_token(cls, name: str) -> tuple[ProcessingService, str]:
        """Create a service (or give an existing one a new token); return it and the token."""
        token = secrets.token_urlsafe(32)
        service, _ = cls.objects.update_or_create(
            name=name, defaults={"token_hash": hash_token(token), "is_active": True}
        )
        return service, token


class TaskPublication(models.Model):
    """How many of a job's tasks NATS has confirmed, in image id order.

    Written by `run_job` after each confirmed chunk, so a retried start resumes where the
    interrupted one stopped. A job's tasks are published once `published == total`.
    """

    job = models.OneToOneField(
        "jobs.Job", on_delete=models.CASCADE, primary_key=True, related_name="task_publication"
    )
    total = models.PositiveIntegerField()
    published = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Job #{self.job_id}: {self.published} of {self.total} tasks published"

    @property
    def complete(self) -> bool:
        return self.published >= self.total


class ResultReceipt(models.Model):
    """A valid result for one image of a job was accepted and queued for saving.

    The undeliverable-task check never fails an image with a receipt: its result waits in
    the Celery queue, however long after NATS stopped redelivering the task.
    """

    # No database constraint: its check would take FOR KEY SHARE on the job row, so a result
    # would wait behind anyone holding that row, and results must never wait on the job row.
    # Django's cascade still deletes a job's receipts with the job.
    job = models.ForeignKey(
        "jobs.Job", on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    image_id = models.BigIntegerField()
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["job", "image_id"], name="one_receipt_per_image")
        ]

    def __str__(self) -> str:
        return f"Result for image {self.image_id} of job #{self.job_id}"
