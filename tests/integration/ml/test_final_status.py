"""How a job whose every image has an answer ends: SUCCESS, COMPLETED_WITH_ERRORS or FAILURE,
decided from its image tasks, with the counts in the final log line."""

from __future__ import annotations

import logging

import pytest

from ami.jobs.logging import FINAL_LINE_KEY
from ami.jobs.models import ImageTask, Job
from ami.jobs.progress import TaskOutcomes, task_outcomes
from ami.jobs.states import JobStatus, StageKey, TaskState
from ami.ml.orchestration import nats
from ami.ml.orchestration.finish import finish_if_complete
from ami.ml.tasks import process_nats_pipeline_result
from tests.support.ml import make_result, reserve_all

pytestmark = pytest.mark.django_db(transaction=True)


def run_job(job: Job, images, failing: int) -> Job:
    """Answer every image of the started job; the first `failing` ones with an error."""
    tasks = reserve_all(job.pk)
    for i, image in enumerate(images):
        error = f"unreadable file {i}" if i < failing else None
        result = make_result(image.pk, tasks[image.pk], error=error)
        process_nats_pipeline_result(job.pk, result, tasks[image.pk])
    job.refresh_from_db()
    return job


def final_line(caplog, job: Job) -> logging.LogRecord:
    """The job's one line that says how it ended (the job log's records, as logged)."""
    (line,) = [
        record
        for record in caplog.records
        if getattr(record, "job_id", None) == job.pk and FINAL_LINE_KEY in record.job_context
    ]
    return line


def test_no_image_failed_ends_success(caplog, started_job, images):
    job = run_job(started_job, images, failing=0)
    assert job.status == JobStatus.SUCCESS
    assert job.failure_reason == ""
    line = final_line(caplog, job)
    assert (line.levelno, line.job_context[FINAL_LINE_KEY]) == (logging.INFO, "SUCCESS")


def test_some_images_failed_ends_completed_with_errors_with_the_counts(caplog, started_job, images):
    job = run_job(started_job, images, failing=2)
    assert job.status == JobStatus.COMPLETED_WITH_ERRORS
    assert job.is_final and job.finished_at is not None
    assert job.failure_reason == ""
    process = job.stages.get(key=StageKey.PROCESS)
    assert (process.processed, process.failed, process.total) == (3, 2, 5)
    assert task_outcomes(job.pk) == TaskOutcomes(done=3, failed=2, pending=0)
    line = final_line(caplog, job)
    assert line.levelno == logging.WARNING
    assert line.getMessage() == "Job finished with errors: 2 of 5 images failed"
    assert line.job_context[FINAL_LINE_KEY] == "COMPLETED_WITH_ERRORS"
    assert nats.consumer_state(job.pk) is None  # cleaned up like any finished job


def test_every_image_failed_ends_failure_saying_so(caplog, started_job, images):
    job = run_job(started_job, images, failing=5)
    assert job.status == JobStatus.FAILURE
    assert job.failure_reason == "every image failed (5)"
    line = final_line(caplog, job)
    assert line.levelno == logging.ERROR
    assert line.getMessage() == "Job failed: every image failed (5)"


def test_the_status_comes_from_the_image_tasks_not_the_counters(caplog, started_job, images):
    # The stage counters say all processed; the tasks (the source of truth) say one failed.
    ImageTask.objects.filter(job=started_job).update(state=TaskState.DONE)
    ImageTask.objects.filter(job=started_job, source_image=images[0]).update(state=TaskState.FAILED)
    started_job.stages.update(processed=5, failed=0)
    assert finish_if_complete(started_job.pk)
    started_job.refresh_from_db()
    assert started_job.status == JobStatus.COMPLETED_WITH_ERRORS
    assert not finish_if_complete(started_job.pk)  # finished once


def test_a_job_with_a_pending_image_is_not_finished(caplog, started_job, images):
    ImageTask.objects.filter(job=started_job).exclude(source_image=images[0]).update(
        state=TaskState.FAILED
    )
    assert task_outcomes(started_job.pk) == TaskOutcomes(done=0, failed=4, pending=1)
    assert not finish_if_complete(started_job.pk)
    started_job.refresh_from_db()
    assert started_job.status == JobStatus.STARTED
