"""Job model invariants against real PostgreSQL: one task per image, legacy logs' shape."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from ami.jobs.models import ImageTask, Job


@pytest.mark.django_db
def test_one_task_per_job_and_image(job, images):
    ImageTask.objects.create(job=job, source_image=images[0])
    with pytest.raises(IntegrityError), transaction.atomic():
        ImageTask.objects.create(job=job, source_image=images[0])


@pytest.mark.django_db
def test_new_job_has_empty_legacy_logs(job):
    assert Job.objects.get(pk=job.pk).legacy_logs == {"stdout": [], "stderr": []}
