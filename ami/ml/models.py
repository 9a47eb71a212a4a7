"""Pipelines, the algorithms they run, and the processing services that run them."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.db import models
from django.utils import timezone

KEY_ROTATION_WINDOW = timedelta(days=1)  # how long a rotated-out key keeps working


class Algorithm(models.Model):
    class TaskType(models.TextChoices):
        DETECTION = "detection"
        CLASSIFICATION = "classification"
        OTHER = "other"  # any other task a processing service declares (embedding, ...)

    key = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    version = models.CharField(max_length=50, default="1")
    task_type = models.CharField(max_length=20, choices=TaskType.choices)
    description = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class Pipeline(models.Model):
    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    version = models.PositiveIntegerField(default=1)
    description = models.TextField(blank=True)
    algorithms = models.ManyToManyField(Algorithm, related_name="pipelines")
    # The projects a processing service registered this pipeline for. Jobs are not yet
    # limited to them: any project may run any pipeline (docs/api.md).
    projects = models.ManyToManyField("main.Project", related_name="pipelines", blank=True)

    def __str__(self) -> str:
        return self.name


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ProcessingService(models.Model):
    """An external worker allowed to use the processing-service API, by its API key.

    Only the key's SHA-256 is stored; the key itself is shown once, at creation. A service
    sees only the jobs of its `projects` (`ami.ml.scope`). Clearing `is_active` revokes
    its keys. During a rotation the previous key keeps working until
    `previous_key_expires_at` (or until `revoke_previous_key`), so a fleet of workers can
    switch keys without downtime. `reported_name` and `client_info` are what the service
    said about itself when it last registered its pipelines.
    """

    name = models.CharField(max_length=200, unique=True)
    key_hash = models.CharField(max_length=64, unique=True)
    previous_key_hash = models.CharField(max_length=64, unique=True, null=True, blank=True)
    previous_key_expires_at = models.DateTimeField(null=True, blank=True)
    projects = models.ManyToManyField(
        "main.Project", related_name="processing_services", blank=True
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    reported_name = models.CharField(max_length=200, blank=True)
    client_info = models.JSONField(default=dict, blank=True)
    registered_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name

    @classmethod
    def create_with_key(cls, name: str) -> tuple[ProcessingService, str]:
        """Create a service (or give an existing one a new key, ending any rotation window:
        every older key stops working); return it and the key."""
        key = secrets.token_urlsafe(32)
        service, _ = cls.objects.update_or_create(
            name=name,
            defaults={
                "key_hash": hash_key(key),
                "previous_key_hash": None,
                "previous_key_expires_at": None,
                "is_active": True,
            },
        )
        return service, key

    def set_new_key(self) -> str:
        """Give this (unsaved) service a new key and return it; only its hash is kept."""
        key = secrets.token_urlsafe(32)
        self.key_hash = hash_key(key)
        return key

    def rotate_key(self, window: timedelta = KEY_ROTATION_WINDOW) -> str:
        """Issue a new key; the current one keeps working for `window`. Return the new key."""
        key = secrets.token_urlsafe(32)
        self.previous_key_hash = self.key_hash
        self.previous_key_expires_at = timezone.now() + window
        self.key_hash = hash_key(key)
        self.save(update_fields=["key_hash", "previous_key_hash", "previous_key_expires_at"])
        return key

    def revoke_previous_key(self) -> None:
        """End a rotation now: only the newest key works."""
        self.previous_key_hash = None
        self.previous_key_expires_at = None
        self.save(update_fields=["previous_key_hash", "previous_key_expires_at"])


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
    # The service whose result was accepted first (a repeat keeps the first receipt). No
    # database constraint, like `job`: deleting a service keeps the record of its results.
    processing_service = models.ForeignKey(
        ProcessingService,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_constraint=False,
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["job", "image_id"], name="one_receipt_per_image")
        ]

    def __str__(self) -> str:
        return f"Result for image {self.image_id} of job #{self.job_id}"
