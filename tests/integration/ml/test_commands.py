"""Management commands: start a job from the CLI, create a processing-service API key."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from ami.jobs.models import Job
from ami.jobs.states import JobStatus
from ami.ml.models import ProcessingService, hash_key

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().strip()


def test_start_job_creates_the_job_and_queues_its_start(project, pipeline, images, broker):
    job_id = int(
        run("start_job", "--project", project.name, "--pipeline", pipeline.slug, "--limit", "3")
    )
    job = Job.objects.get(pk=job_id)
    assert (job.status, job.params, job.project, job.pipeline) == (
        JobStatus.PENDING,
        {"limit": 3},
        project,
        pipeline,
    )
    assert broker.llen("jobs") == 1


def test_start_job_explains_bad_arguments(project, pipeline):
    with pytest.raises(CommandError, match="no pipeline"):
        run("start_job", "--project", project.name, "--pipeline", "nope")
    with pytest.raises(CommandError, match="no project"):
        run("start_job", "--project", "nope", "--pipeline", pipeline.slug)
    with pytest.raises(CommandError, match="comma-separated"):
        run("start_job", "--project", project.name, "--pipeline", pipeline.slug, "--image-ids", "a")
    assert not Job.objects.exists()


def test_processing_service_key_is_printed_once_and_stored_hashed():
    key = run("create_processing_service", "gpu box")
    service = ProcessingService.objects.get(name="gpu box")
    assert service.key_hash == hash_key(key) and key not in service.key_hash
    ProcessingService.objects.filter(pk=service.pk).update(is_active=False)
    rotated = run("create_processing_service", "gpu box")
    assert rotated != key
    service.refresh_from_db()
    assert service.key_hash == hash_key(rotated) and service.is_active


def test_start_job_refuses_a_project_without_images_and_creates_nothing(project, pipeline):
    with pytest.raises(CommandError, match="no images"):
        run("start_job", "--project", project.name, "--pipeline", pipeline.slug)
    assert not Job.objects.exists()
