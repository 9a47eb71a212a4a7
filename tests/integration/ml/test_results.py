"""process_nats_pipeline_result against real PostgreSQL and NATS: once, exact, acked."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from ami.jobs.lifecycle import cancel_job, create_job
from ami.jobs.locking import transition
from ami.jobs.models import ImageTask, Job, JobStage
from ami.jobs.progress import read_progress
from ami.jobs.states import JobStatus, StageKey, StageStatus, TaskState
from ami.main.models import Classification, Detection
from ami.ml.orchestration import dispatch, nats
from ami.ml.tasks import process_nats_pipeline_result
from tests.support.ml import make_result, reserve_all, start

pytestmark = pytest.mark.django_db(transaction=True)


def stage(job: Job, key: StageKey) -> JobStage:
    return JobStage.objects.get(job=job, key=key)


def test_start_collects_images_and_publishes_one_task_each(started_job, images):
    collect = stage(started_job, StageKey.COLLECT)
    assert (collect.status, collect.total, collect.progress) == (StageStatus.SUCCESS, 5, 1.0)
    assert stage(started_job, StageKey.PROCESS).total == 5
    assert started_job.status == JobStatus.STARTED
    assert ImageTask.objects.filter(job=started_job, state=TaskState.PENDING).count() == 5
    assert nats.consumer_state(started_job.pk).pending == 5
    assert set(reserve_all(started_job.pk)) == {image.pk for image in images}


def test_same_result_delivered_five_times_is_saved_once(started_job, images):
    tasks = reserve_all(started_job.pk)
    first = images[0].pk
    for _ in range(5):
        process_nats_pipeline_result(started_job.pk, make_result(first, tasks[first]), tasks[first])
    process = stage(started_job, StageKey.PROCESS)
    assert (process.processed, process.failed, process.detections) == (1, 0, 2)
    assert process.classifications == 4
    assert process.progress == pytest.approx(0.2)
    assert Detection.objects.filter(source_image_id=first).count() == 2
    assert Classification.objects.filter(detection__source_image_id=first).count() == 4
    assert nats.consumer_state(started_job.pk).ack_pending == 4  # the first one was acked


def test_last_result_finishes_the_job_once_and_deletes_its_queue(started_job, images):
    tasks = reserve_all(started_job.pk)
    for image in images[:4]:
        process_nats_pipeline_result(
            started_job.pk, make_result(image.pk, tasks[image.pk]), tasks[image.pk]
        )
    last = images[4].pk
    error = make_result(last, tasks[last], error="camera file unreadable")
    process_nats_pipeline_result(started_job.pk, error, tasks[last])
    started_job.refresh_from_db()
    assert started_job.status == JobStatus.COMPLETED_WITH_ERRORS  # one image failed
    process = stage(started_job, StageKey.PROCESS)
    assert (process.processed, process.failed, process.progress) == (4, 1, 1.0)
    assert process.status == StageStatus.SUCCESS
    assert ImageTask.objects.get(job=started_job, source_image_id=last).error == (
        "camera file unreadable"
    )
    assert nats.consumer_state(started_job.pk) is None
    finished_at = started_job.finished_at
    # A late redelivery after the end changes nothing and does not fail.
    process_nats_pipeline_result(started_job.pk, error, tasks[last])
    started_job.refresh_from_db()
    assert started_job.finished_at == finished_at
    assert stage(started_job, StageKey.PROCESS).failed == 1


def test_eight_concurrent_workers_give_exact_counters(project, pipeline, many_images):
    job = start(create_job(project, pipeline, "forty images"))
    tasks = sorted(reserve_all(job.pk).items())
    # Every result is delivered twice, by two different workers, in a different order.
    deliveries = tasks + tasks[::-1]
    shares = [deliveries[i::8] for i in range(8)]
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def worker(share: list[tuple[int, str]]) -> None:
        try:
            barrier.wait()
            for image_id, reply in share:
                boxes = image_id % 4
                result = make_result(image_id, reply, boxes=boxes)
                process_nats_pipeline_result(job.pk, result, reply)
        except BaseException as exc:  # re-raised in the main thread below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCESS
    expected_boxes = sum(image.pk % 4 for image in many_images)
    for key in (StageKey.PROCESS, StageKey.RESULTS):
        counters = stage(job, key)
        assert (counters.processed, counters.failed, counters.total) == (40, 0, 40)
        assert counters.detections == expected_boxes
        assert counters.classifications == 2 * expected_boxes
    assert Detection.objects.filter(source_image__in=many_images).count() == expected_boxes
    assert not ImageTask.objects.filter(job=job, state=TaskState.PENDING).exists()
    nats.delete_queue(job.pk)


def test_result_of_a_cancelled_job_is_not_counted(started_job, images):
    tasks = reserve_all(started_job.pk)
    assert cancel_job(started_job.pk)
    first = images[0].pk
    process_nats_pipeline_result(started_job.pk, make_result(first, tasks[first]), tasks[first])
    started_job.refresh_from_db()
    assert started_job.status == JobStatus.REVOKED
    assert stage(started_job, StageKey.PROCESS).processed == 0
    assert not Detection.objects.filter(source_image_id=first).exists()
    assert nats.consumer_state(started_job.pk) is None
    assert not cancel_job(started_job.pk)


def test_empty_job_finishes_at_start(project, pipeline):
    job = start(create_job(project, pipeline, "nothing to do"))
    assert job.status == JobStatus.SUCCESS


def test_bad_params_fail_the_job_with_the_reason(project, pipeline, images):
    job = start(create_job(project, pipeline, "bad", params={"limit": "many"}))
    assert job.status == JobStatus.FAILURE
    assert "params.limit" in job.failure_reason


def test_result_for_a_deleted_job_is_dropped_quietly(started_job, images):
    tasks = reserve_all(started_job.pk)
    nats.delete_queue(started_job.pk)
    job_id = started_job.pk
    Job.objects.filter(pk=job_id).delete()
    first = images[0].pk
    outcome = process_nats_pipeline_result(job_id, make_result(first, tasks[first]), tasks[first])
    assert outcome == {"counted": False, "detections": 0}
    assert not Detection.objects.filter(source_image_id=first).exists()


def test_progress_snapshot_reads_status_and_counters(started_job, images):
    tasks = reserve_all(started_job.pk)
    first = images[0].pk
    process_nats_pipeline_result(started_job.pk, make_result(first, tasks[first]), tasks[first])
    snapshot = read_progress(started_job.pk)
    assert (snapshot.status, snapshot.is_final) == (JobStatus.STARTED, False)
    assert (snapshot.process.done, snapshot.process.total, snapshot.process.detections) == (1, 5, 2)
    assert snapshot.stages[StageKey.COLLECT].progress == 1.0


def test_start_resumes_after_a_crash_and_never_publishes_twice(project, pipeline, images):
    job = create_job(project, pipeline, "crashed while starting")
    transition(job.pk, JobStatus.STARTED)  # the worker died right after this
    dispatch.collect_and_publish(job.pk)
    assert nats.consumer_state(job.pk).pending == 5
    dispatch.collect_and_publish(job.pk)  # a redelivered start of a published job does nothing
    assert nats.consumer_state(job.pk).pending == 5
    assert ImageTask.objects.filter(job=job).count() == 5
    nats.delete_queue(job.pk)
