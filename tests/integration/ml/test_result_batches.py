"""Saving results in batches against real PostgreSQL: each image counted once, whichever
subsets come back in whatever batches, from concurrent processes too; a constant number of
statements per batch; and no increment left behind by a folder that was busy."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ami.jobs.lifecycle import create_job
from ami.jobs.locking import fold_increments, set_collected, transition
from ami.jobs.models import ImageTask, Job, JobStage, ProgressIncrement
from ami.jobs.states import JobStatus, StageKey, TaskState
from ami.main.models import Classification, Detection, SourceImage
from ami.ml.orchestration.results import save_batch
from ami.ml.schemas import PipelineResult
from tests.support.locks import blocked_pids, rows_locked
from tests.support.ml import make_result
from tests.support.polling import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

DB_EXAMPLES = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
BOXES = 2  # detections per successful result, each with two classifications


def running_job(project, pipeline, count: int) -> tuple[Job, list[int]]:
    """A started job over `count` new images, without NATS (saving needs none)."""
    first = SourceImage.objects.count()
    images = SourceImage.objects.bulk_create(
        SourceImage(project=project, path=f"batch/{first + i}.png") for i in range(count)
    )
    job = create_job(project, pipeline, f"{count} images")
    ImageTask.objects.bulk_create(ImageTask(job=job, source_image=image) for image in images)
    set_collected(job.pk, count)
    assert transition(job.pk, JobStatus.STARTED)
    return job, [image.pk for image in images]


def result(image_id: int, fails: bool = False) -> PipelineResult:
    error = "could not read the image" if fails else None
    return PipelineResult.model_validate(make_result(image_id, f"reply.{image_id}", BOXES, error))


def counters(job: Job) -> tuple[int, int, int, int]:
    stage = JobStage.objects.get(job=job, key=StageKey.PROCESS)
    return stage.processed, stage.failed, stage.detections, stage.classifications


deliveries = st.lists(
    st.lists(st.tuples(st.integers(0, 9), st.booleans()), min_size=1, max_size=6), max_size=8
)


@DB_EXAMPLES
@given(batches=deliveries)
def test_any_subsets_in_any_batches_count_each_image_once(project, pipeline, batches):
    job, images = running_job(project, pipeline, 10)
    first_outcome: dict[int, bool] = {}  # image -> failed, as the first delivery said
    for batch in batches:
        for index, fails in batch:
            first_outcome.setdefault(images[index], fails)
        save_batch(job.pk, [result(images[i], fails) for i, fails in batch])
        fold_increments(job.pk)

    done = [i for i, fails in first_outcome.items() if not fails]
    failed = len(first_outcome) - len(done)
    assert counters(job) == (len(done), failed, BOXES * len(done), 2 * BOXES * len(done))
    states = dict(ImageTask.objects.filter(job=job).values_list("source_image_id", "state"))
    for image in images:
        expected = {None: TaskState.PENDING, False: TaskState.DONE, True: TaskState.FAILED}
        assert states[image] == expected[first_outcome.get(image)]
    assert Detection.objects.filter(source_image_id__in=images).count() == BOXES * len(done)
    saved = Classification.objects.filter(detection__source_image_id__in=images)
    assert saved.count() == 2 * BOXES * len(done)
    assert not ProgressIncrement.objects.filter(job=job).exists()


def test_a_batch_costs_the_statements_of_one_result(project, pipeline):
    job, images = running_job(project, pipeline, 17)
    with CaptureQueriesContext(connection) as one:
        save_batch(job.pk, [result(images[0])])
    with CaptureQueriesContext(connection) as sixteen:
        save_batch(job.pk, [result(image) for image in images[1:]])
    assert len(sixteen) == len(one) <= 9, [q["sql"][:60] for q in sixteen.captured_queries]
    statements = [q["sql"] for q in sixteen.captured_queries]
    assert not any("jobs_jobstage" in sql or 'UPDATE "jobs_job"' in sql for sql in statements)


def test_a_repeat_saves_nothing_and_a_stopped_job_counts_nothing(project, pipeline):
    job, images = running_job(project, pipeline, 3)
    first = save_batch(job.pk, [result(images[0])])
    again = save_batch(job.pk, [result(images[0]), result(images[1], fails=True)])
    assert (first.saved, again.saved, again.failed, again.repeats) == (
        [images[0]],
        [],
        [images[1]],
        [images[0]],
    )
    assert transition(job.pk, JobStatus.REVOKED)
    late = save_batch(job.pk, [result(images[2])])
    assert (late.counted, late.repeats) == (0, [images[2]])
    fold_increments(job.pk)
    assert counters(job) == (1, 1, BOXES, 2 * BOXES)


CHILD = """
import sys, time
from pathlib import Path
import django
django.setup()
from ami.jobs.locking import fold_increments
from ami.ml.orchestration.results import save_batch
from ami.ml.schemas import PipelineResult
from tests.support.locks import blocked_pids, rows_locked
from tests.support.ml import make_result

job_id, go = int(sys.argv[1]), Path(sys.argv[2])
batches = [[int(i) for i in batch.split(",")] for batch in sys.argv[3:]]
print("ready", flush=True)
while not go.exists():
    time.sleep(0.005)
for batch in batches:
    results = [PipelineResult.model_validate(make_result(i, f"reply.{i}")) for i in batch]
    save_batch(job_id, results)
    fold_increments(job_id)
"""
WRITERS = 6
PER_BATCH = 8


def test_concurrent_processes_with_overlapping_batches_count_each_image_once(
    project, pipeline, subprocess_env, tmp_path
):
    job, images = running_job(project, pipeline, 48)
    go = tmp_path / "go"
    children = []
    for writer in range(WRITERS):
        order = images[writer * 7 :] + images[: writer * 7]  # every writer sends every image
        batches = [order[i : i + PER_BATCH] for i in range(0, len(order), PER_BATCH)]
        args = [",".join(map(str, batch)) for batch in batches]
        children.append(
            subprocess.Popen(
                [sys.executable, "-c", CHILD, str(job.pk), str(go), *args],
                env={**subprocess_env, "DJANGO_SETTINGS_MODULE": "ami.settings"},
                cwd=Path(__file__).parents[3],
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    try:
        for child in children:
            assert child.stdout.readline().strip() == "ready"
        go.touch()
        assert [child.wait(timeout=120) for child in children] == [0] * WRITERS
    finally:
        for child in children:
            child.kill()
            child.wait()

    assert counters(job) == (len(images), 0, BOXES * len(images), 2 * BOXES * len(images))
    assert Detection.objects.filter(source_image_id__in=images).count() == BOXES * len(images)
    assert not ProgressIncrement.objects.filter(job=job).exists()


def test_a_busy_folder_folds_what_others_added_meanwhile(project, pipeline, test_database_url):
    """The holder of the fold lock looks again after it commits: an increment whose writer
    found the lock taken is folded by the holder, not left behind."""
    job, images = running_job(project, pipeline, 2)
    save_batch(job.pk, [result(images[0])])
    stage_row = JobStage.objects.get(job=job, key=StageKey.PROCESS).pk
    with rows_locked(test_database_url, "jobs_jobstage", "id", stage_row) as blocker:
        folder = threading.Thread(target=fold_in_own_connection, args=[job.pk])
        folder.start()
        wait_until(lambda: blocked_pids(blocker), "the folder to wait on the held stage row")

        save_batch(job.pk, [result(images[1])])
        fold_increments(job.pk)  # the folder holds the fold lock: this returns at once
        # Both still there: the folder's delete of the first is not committed yet.
        assert ProgressIncrement.objects.filter(job=job).count() == 2
    folder.join(timeout=30)

    assert not folder.is_alive()
    assert counters(job) == (2, 0, 2 * BOXES, 4 * BOXES)
    assert not ProgressIncrement.objects.filter(job=job).exists()


def fold_in_own_connection(job_id: int) -> None:
    try:
        fold_increments(job_id)
    finally:
        connection.close()
