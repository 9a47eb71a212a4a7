"""A job's start survives NATS going away and its worker being killed, at every phase.

Each test puts the fault where it can strike (before the stream exists, after some chunks
were confirmed, after the last publish but before it was recorded), then retries the start
the way Celery does, and checks that every task is in the stream exactly once.

The pause between "chunk confirmed" and "chunk recorded" is a real row lock held on the
job's publication row by another connection: the start blocks there, and the fault strikes.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import psycopg
import pytest
from django.db import connection

from ami.jobs.lifecycle import create_job
from ami.jobs.locking import transition
from ami.jobs.models import Job
from ami.jobs.states import JobStatus
from ami.ml.orchestration import dispatch, nats
from ami.ml.tasks import TRANSIENT_ERRORS
from ami_lab.servers import SERVERS
from tests.support.locks import blocked_pids, rows_locked
from tests.support.ml import reserve_all

pytestmark = pytest.mark.django_db(transaction=True)

RETRY_FOR = 30.0  # seconds a start keeps being retried after NATS is back
PAUSE_WITHIN = 20.0  # seconds for the start to reach the held publication row
CHILD_START = """
import sys, django
django.setup()
from django.conf import settings
settings.NATS_PUBLISH_CHUNK = int(sys.argv[2])
from ami.ml.orchestration import dispatch
dispatch.collect_and_publish(int(sys.argv[1]))
"""


@pytest.fixture
def nats_server():
    """The embedded NATS server, running again (same port, same data) after the test."""
    server = SERVERS["nats"]
    state = server.read_state()
    if state is None:
        pytest.skip("NATS is not the embedded server: it cannot be stopped here")
    yield server
    if not server.healthy():
        server.start(port=state.port)


@pytest.fixture
def fast_nats(settings):
    settings.NATS_REQUEST_TIMEOUT = 1.0
    settings.NATS_FAILOVER_TIMEOUT = 0.0  # NATS down fails the call at once (no election)
    settings.NATS_PUBLISH_CHUNK = 10
    return settings


def start_with_retries(job_id: int) -> None:
    """Run the start as the Celery task does: retried on transient errors."""
    deadline = time.monotonic() + RETRY_FOR
    while True:
        try:
            dispatch.collect_and_publish(job_id)
            return
        except TRANSIENT_ERRORS:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def queued_images(job_id: int) -> list[int]:
    """Every image with a task in the stream, once per message (duplicates would repeat)."""
    state = nats.consumer_state(job_id)
    assert state is not None, "the job has no task queue"
    tasks = reserve_all(job_id)
    assert state.pending == len(tasks)
    return sorted(tasks)


def collected_job(project, pipeline) -> Job:
    """A job whose start collected its images and then died (resumed by the next start)."""
    job = create_job(project, pipeline, "faulty start")
    transition(job.pk, JobStatus.STARTED)
    dispatch.collect(job)
    return job


def end_orphaned_backends(blocker: psycopg.Connection) -> None:
    """End the killed start's server process, which would notice its client's death late."""
    for pid in blocked_pids(blocker):
        blocker.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])


def wait_for_start_to_block(blocker: psycopg.Connection) -> None:
    deadline = time.monotonic() + PAUSE_WITHIN
    while True:
        if blocked_pids(blocker):
            return
        assert time.monotonic() < deadline, "the start never recorded a published chunk"
        time.sleep(0.05)


def image_ids(images) -> list[int]:
    return sorted(image.pk for image in images)


def test_nats_down_before_the_stream_exists(project, pipeline, many_images, fast_nats, nats_server):
    job = create_job(project, pipeline, "NATS down at start")
    transition(job.pk, JobStatus.PENDING)
    port = nats_server.read_state().port
    nats_server.stop()
    with pytest.raises(TRANSIENT_ERRORS):
        dispatch.collect_and_publish(job.pk)
    nats_server.start(port=port)
    start_with_retries(job.pk)
    assert queued_images(job.pk) == image_ids(many_images)
    assert dispatch.is_published(job.pk)
    nats.delete_queue(job.pk)


def test_nats_stopped_after_some_chunks_resumes_after_the_last_confirmed_one(
    project, pipeline, many_images, fast_nats, nats_server, test_database_url
):
    job = collected_job(project, pipeline)
    errors: list[BaseException] = []

    def first_attempt() -> None:
        try:
            dispatch.collect_and_publish(job.pk)
        except BaseException as exc:  # checked in the main thread below
            errors.append(exc)
        finally:
            connection.close()

    port = nats_server.read_state().port
    attempt = threading.Thread(target=first_attempt)
    with rows_locked(test_database_url, "ml_taskpublication", "job_id", job.pk) as blocker:
        attempt.start()
        wait_for_start_to_block(blocker)  # chunk 1 confirmed by NATS, not yet recorded
        nats_server.stop()
    attempt.join(timeout=RETRY_FOR)
    assert len(errors) == 1 and isinstance(errors[0], TRANSIENT_ERRORS), errors
    assert dispatch.published_count(job.pk) == 10
    assert not dispatch.is_published(job.pk)
    nats_server.start(port=port)
    start_with_retries(job.pk)
    assert queued_images(job.pk) == image_ids(many_images)
    assert dispatch.is_published(job.pk)
    nats.delete_queue(job.pk)


@pytest.mark.parametrize(
    ("chunk", "published_before_kill"),
    [(10, 10), (200, 40)],
    ids=["killed-mid-publish", "killed-after-the-last-publish-before-recording-it"],
)
def test_start_killed_while_publishing_is_resumed_without_loss_or_duplicates(
    project, pipeline, many_images, subprocess_env, test_database_url, chunk, published_before_kill
):
    job = collected_job(project, pipeline)
    with rows_locked(test_database_url, "ml_taskpublication", "job_id", job.pk) as blocker:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD_START, str(job.pk), str(chunk)],
            env={**subprocess_env, "DJANGO_SETTINGS_MODULE": "ami.settings"},
        )
        try:
            wait_for_start_to_block(blocker)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
            end_orphaned_backends(blocker)
    assert nats.consumer_state(job.pk).pending == published_before_kill
    assert dispatch.published_count(job.pk) == 0
    dispatch.collect_and_publish(job.pk)  # Celery redelivers the start of a worker that was lost
    assert queued_images(job.pk) == image_ids(many_images)
    assert dispatch.is_published(job.pk)
    nats.delete_queue(job.pk)
