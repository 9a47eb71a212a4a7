"""The pipeline end to end with real processes: web server, Celery workers, `ami worker`."""

from __future__ import annotations

import os
import re
import signal
import threading

import psycopg
import pytest
from django.db import connection

from ami.jobs.lifecycle import cancel_job, create_job, start_job
from ami.jobs.locking import transition
from ami.jobs.models import ImageTask, Job, JobStage
from ami.jobs.states import JobStatus, StageKey, TaskState
from ami.main.models import Detection
from ami.ml.orchestration import dispatch, nats
from ami_lab.demo.setup import evaluate
from tests.support.polling import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

SHORT_ACK_WAIT = 2.0  # seconds before NATS redelivers an unacked task


def final(job: Job) -> Job | None:
    job.refresh_from_db()
    return job if job.is_final else None


def process_stage(job: Job) -> JobStage:
    return JobStage.objects.get(job=job, key=StageKey.PROCESS)


def assert_exact(job: Job, images: int) -> None:
    stage = process_stage(job)
    assert (stage.processed, stage.failed, stage.total) == (images, 0, images)
    detections = Detection.objects.filter(source_image__in=job.project.images.all()).count()
    assert stage.detections == detections > 0
    assert not ImageTask.objects.filter(job=job, state=TaskState.PENDING).exists()


def start_in_process(job: Job) -> None:
    """Start the job here (not in Celery), so its consumer gets this test's settings."""
    transition(job.pk, JobStatus.PENDING)
    dispatch.collect_and_publish(job.pk)


def test_small_job_end_to_end(stack, demo_project):
    project, pipeline = demo_project
    stack.celery("celery", "jobs,ml_results")
    job = create_job(project, pipeline, "end to end", {"limit": 16})
    start_job(job.pk)
    stack.worker("worker", job, "--batch", "4")
    wait_until(lambda: final(job), "the job to finish")
    assert job.status == JobStatus.SUCCESS, job.failure_reason
    assert_exact(job, 16)
    score = evaluate(job)
    assert score.precision >= 0.95 and score.recall >= 0.95
    assert nats.consumer_state(job.pk) is None
    worker = stack.supervisor.children[-1].process
    assert (
        wait_until(lambda: worker.poll() is not None, "the worker to exit") and worker.wait() == 0
    )


def test_killed_worker_tasks_are_redelivered(stack, demo_project, settings):
    project, pipeline = demo_project
    settings.NATS_TASK_ACK_WAIT = SHORT_ACK_WAIT
    stack.celery("celery", "ml_results")
    job = create_job(project, pipeline, "kill a worker", {"limit": 16})
    start_in_process(job)
    stack.worker("slow", job, "--batch", "4", "--concurrency", "1", "--inference-delay", "60")
    wait_until(lambda: nats.consumer_state(job.pk).ack_pending == 4, "the slow worker's batch")
    os.killpg(stack.supervisor.children[-1].pgid, signal.SIGKILL)
    assert process_stage(job).processed == 0  # it never posted the batch it held
    stack.worker("fast", job, "--batch", "4")
    wait_until(lambda: final(job), "the job to finish")
    assert job.status == JobStatus.SUCCESS
    assert_exact(job, 16)


# Celery takes a task's time limits from the sender's settings: the web server too.
@pytest.mark.parametrize("stack_extra_env", [{"AMI_TASK_SOFT_TIME_LIMIT": "1"}])
def test_soft_time_limit_leaves_the_message_for_redelivery(
    stack, stack_env, demo_project, settings
):
    project, pipeline = demo_project
    settings.NATS_TASK_ACK_WAIT = SHORT_ACK_WAIT
    stack.celery("celery", "ml_results")
    job = create_job(project, pipeline, "soft time limit", {"limit": 6})
    start_in_process(job)
    # Hold the stage rows: every result task blocks on its counting statement past 1 s.
    with psycopg.connect(stack_env["DATABASE_URL"].replace("postgres://", "postgresql://")) as db:
        db.execute("SELECT 1 FROM jobs_jobstage WHERE job_id = %s FOR UPDATE", (job.pk,))
        stack.worker("worker", job, "--batch", "6")
        wait_until(lambda: "SoftTimeLimitExceeded" in stack.log("celery"), "a soft time limit")
        assert process_stage(job).processed == 0
    wait_until(lambda: final(job), "the job to finish")
    assert job.status == JobStatus.SUCCESS
    assert_exact(job, 6)
    log = stack.log("celery")
    interrupted = re.findall(r"\[([0-9a-f-]{36})\] raised unexpected: SoftTimeLimitExceeded", log)
    assert interrupted
    for task_id in interrupted:  # reported as failures, never as successes or retries
        assert f"[{task_id}] succeeded" not in log and f"[{task_id}] retry" not in log


def test_cancel_stops_serving_tasks_and_removes_the_queue(stack, demo_project):
    project, pipeline = demo_project
    stack.celery("celery", "ml_results")
    job = create_job(project, pipeline, "cancel me", {"limit": 16})
    start_in_process(job)
    stack.worker("worker", job, "--batch", "2", "--concurrency", "1", "--inference-delay", "0.3")
    wait_until(lambda: process_stage(job).processed >= 2, "some progress")
    assert cancel_job(job.pk)
    worker = stack.supervisor.children[-1].process
    wait_until(lambda: worker.poll() is not None, "the worker to stop")
    assert worker.wait() == 0
    job.refresh_from_db()
    assert job.status == JobStatus.REVOKED
    assert nats.consumer_state(job.pk) is None
    assert process_stage(job).processed < 16


def test_sigterm_lets_the_worker_post_its_batch_then_exit(stack, demo_project):
    project, pipeline = demo_project
    stack.celery("celery", "ml_results")
    job = create_job(project, pipeline, "graceful stop", {"limit": 16})
    start_in_process(job)
    stack.worker("worker", job, "--batch", "3", "--concurrency", "1", "--inference-delay", "1")
    wait_until(lambda: nats.consumer_state(job.pk).ack_pending == 3, "a batch in hand")
    child = stack.supervisor.children[-1]
    os.kill(child.pgid, signal.SIGTERM)
    assert child.process.wait(timeout=60) == 0
    assert "Stopped: 3 images in 1 batches" in stack.log("worker")
    wait_until(lambda: process_stage(job).processed == 3, "its three results")
    assert nats.consumer_state(job.pk).pending == 13
    nats.delete_queue(job.pk)


def test_connections_killed_by_postgres_leave_the_job_correct(stack, stack_env, demo_project):
    project, pipeline = demo_project
    stack.celery("celery", "ml_results")
    job = create_job(project, pipeline, "terminated connections", {"limit": 16})
    start_in_process(job)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        own_pid = cursor.fetchone()[0]
    stop = threading.Event()
    killed: list[int] = []

    def terminate_others() -> None:
        url = stack_env["DATABASE_URL"].replace("postgres://", "postgresql://")
        with psycopg.connect(url, autocommit=True) as chaos:
            while not stop.wait(0.15):
                rows = chaos.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND backend_type = 'client backend'"
                    " AND pid NOT IN (pg_backend_pid(), %s)",
                    (own_pid,),
                ).fetchall()
                killed.extend(1 for row in rows if row[0])

    chaos = threading.Thread(target=terminate_others)
    chaos.start()
    try:
        stack.worker("worker", job, "--batch", "2")
        wait_until(lambda: final(job), "the job to finish")
    finally:
        stop.set()
        chaos.join()
    assert len(killed) > 5
    assert job.status == JobStatus.SUCCESS
    assert_exact(job, 16)
