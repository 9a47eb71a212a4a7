"""The stale-job check finalizes dead jobs and leaves live, new and finished ones alone."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from ami.jobs.lifecycle import create_job
from ami.jobs.locking import transition
from ami.jobs.models import ImageTask, Job
from ami.jobs.states import JobStatus, StageStatus, TaskState
from ami.ml.orchestration import nats
from ami.ml.orchestration.stale import check_stale_jobs
from ami.ml.orchestration.undeliverable import fail_undeliverable, fail_undeliverable_tasks
from ami.ml.tasks import check_stale_jobs as check_stale_jobs_task
from ami.ml.tasks import process_nats_pipeline_result
from tests.support.ml import make_result, reserve_all, start

pytestmark = pytest.mark.django_db(transaction=True)

LONG_AGO = timedelta(hours=2)


def age(job: Job) -> None:
    old = timezone.now() - LONG_AGO
    Job.objects.filter(pk=job.pk).update(created_at=old, started_at=old, last_heartbeat_at=old)


def test_dead_job_is_failed_with_the_reason_and_its_queue_removed(
    project, pipeline, images, settings
):
    settings.JOB_STALE_AFTER = 600
    dead = start(create_job(project, pipeline, "dead"))
    age(dead)
    assert check_stale_jobs_task() == [dead.pk]  # the Celery beat task, run here
    dead.refresh_from_db()
    assert dead.status == JobStatus.FAILURE
    assert "no heartbeat" in dead.failure_reason and "5 images" in dead.failure_reason
    assert nats.consumer_state(dead.pk) is None
    assert set(dead.stages.values_list("status", flat=True)) <= {
        StageStatus.SUCCESS,
        StageStatus.FAILURE,
    }


def test_completed_new_and_live_jobs_are_left_alone(project, pipeline, images):
    completed = create_job(project, pipeline, "completed")
    transition(completed.pk, JobStatus.STARTED)
    transition(completed.pk, JobStatus.SUCCESS)
    age(completed)
    just_created = create_job(project, pipeline, "just created")
    old_but_never_started = create_job(project, pipeline, "created long ago")
    age(old_but_never_started)
    live = start(create_job(project, pipeline, "live"))
    assert check_stale_jobs(stale_after=600) == []
    statuses = dict(
        Job.objects.filter(
            pk__in=[completed.pk, just_created.pk, old_but_never_started.pk, live.pk]
        ).values_list("pk", "status")
    )
    assert statuses == {
        completed.pk: JobStatus.SUCCESS,
        just_created.pk: JobStatus.CREATED,
        old_but_never_started.pk: JobStatus.CREATED,
        live.pk: JobStatus.STARTED,
    }
    nats.delete_queue(live.pk)


def test_stale_job_whose_images_all_have_results_ends_success(project, pipeline, images):
    job = start(create_job(project, pipeline, "missed its finish"))
    ImageTask.objects.filter(job=job).update(state=TaskState.DONE)
    age(job)
    assert check_stale_jobs(stale_after=600) == [job.pk]
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCESS


def test_stale_job_whose_answers_include_failures_ends_completed_with_errors(
    caplog, project, pipeline, images
):
    job = start(create_job(project, pipeline, "missed its finish, two images failed"))
    ImageTask.objects.filter(job=job).update(state=TaskState.DONE)
    ImageTask.objects.filter(job=job, source_image__in=images[:2]).update(state=TaskState.FAILED)
    age(job)
    assert check_stale_jobs(stale_after=600) == [job.pk]
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED_WITH_ERRORS
    assert job.failure_reason == "" and job.finished_at is not None
    (line,) = [r for r in caplog.records if r.getMessage().startswith("Stale job finalized")]
    assert line.getMessage() == "Stale job finalized with errors: 2 of 5 images failed"
    assert nats.consumer_state(job.pk) is None


def test_stale_job_whose_every_image_failed_ends_failure(project, pipeline, images):
    job = start(create_job(project, pipeline, "missed its finish, every image failed"))
    ImageTask.objects.filter(job=job).update(state=TaskState.FAILED)
    age(job)
    assert check_stale_jobs(stale_after=600) == [job.pk]
    job.refresh_from_db()
    assert job.status == JobStatus.FAILURE
    assert job.failure_reason == "every image failed (5)"


def test_images_nats_gave_up_on_fail_and_the_job_finishes(project, pipeline, images, settings):
    settings.NATS_TASK_ACK_WAIT = 0.5
    settings.NATS_TASK_MAX_DELIVER = 1
    job = start(create_job(project, pipeline, "two images crash every worker"))
    tasks = reserve_all(job.pk)
    assert fail_undeliverable(job.pk) == 0  # all five still await an ack
    for image in images[:3]:
        result = make_result(image.pk, tasks[image.pk])
        process_nats_pipeline_result(job.pk, result, tasks[image.pk])
    time.sleep(1.0)  # ack wait over: the last two tasks are out of deliveries
    assert nats.reserve(job.pk, 10) == []
    assert fail_undeliverable_tasks() == {job.pk: 2}
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED_WITH_ERRORS
    stage = job.stages.get(key="process")
    assert (stage.processed, stage.failed) == (3, 2)
    errors = set(
        ImageTask.objects.filter(job=job, state=TaskState.FAILED).values_list("error", flat=True)
    )
    assert errors == {"no result after 1 deliveries"}


def test_stale_pending_job_fails_saying_it_never_started(project, pipeline, images):
    queued_but_no_worker = create_job(project, pipeline, "no celery worker")
    transition(queued_but_no_worker.pk, JobStatus.PENDING)
    age(queued_but_no_worker)
    assert check_stale_jobs(stale_after=600) == [queued_but_no_worker.pk]
    queued_but_no_worker.refresh_from_db()
    assert queued_but_no_worker.status == JobStatus.FAILURE
    assert "never started" in queued_but_no_worker.failure_reason


def test_stale_started_job_that_never_collected_fails_not_succeeds(project, pipeline, images):
    died_before_collecting = create_job(project, pipeline, "died before collecting")
    transition(died_before_collecting.pk, JobStatus.STARTED)
    age(died_before_collecting)
    assert check_stale_jobs(stale_after=600) == [died_before_collecting.pk]
    died_before_collecting.refresh_from_db()
    assert died_before_collecting.status == JobStatus.FAILURE
    assert "never collected" in died_before_collecting.failure_reason


def test_start_without_a_pipeline_fails_at_once_saying_why(project, images):
    job = create_job(project, None, "no pipeline")
    job = start(job)
    assert job.status == JobStatus.FAILURE
    assert "no pipeline" in job.failure_reason
