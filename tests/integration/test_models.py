"""Model invariants against real PostgreSQL: guarded transitions and idempotent results."""

from __future__ import annotations

import threading

import pytest
from django.db import IntegrityError, connection, transaction

from ami.jobs.locking import transition
from ami.jobs.models import ImageTask, Job
from ami.jobs.states import JobStatus
from ami.main.models import Classification, Detection
from ami.ml.models import Algorithm


@pytest.mark.django_db
def test_transition_follows_the_state_machine(job):
    assert transition(job.pk, JobStatus.STARTED)
    assert transition(job.pk, JobStatus.SUCCESS)
    assert not transition(job.pk, JobStatus.FAILURE, reason="late")
    assert not transition(job.pk, JobStatus.STARTED)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCESS
    assert job.failure_reason == ""
    assert job.started_at and job.finished_at


@pytest.mark.django_db(transaction=True)
def test_only_one_concurrent_finisher_wins(job):
    transition(job.pk, JobStatus.STARTED)
    barrier = threading.Barrier(8)
    wins: list[JobStatus] = []

    def finish(target: JobStatus) -> None:
        barrier.wait()
        try:
            if transition(job.pk, target, reason=str(target)):
                wins.append(target)
        finally:
            connection.close()

    targets = [JobStatus.SUCCESS, JobStatus.FAILURE, JobStatus.REVOKED, JobStatus.SUCCESS] * 2
    threads = [threading.Thread(target=finish, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(wins) == 1
    job.refresh_from_db()
    assert job.status == wins[0]


@pytest.mark.django_db
def test_detection_is_unique_per_image_algorithm_and_box(images):
    algorithm = Algorithm.objects.create(key="d", name="d", task_type="detection")
    box = {"x1": 1.0, "y1": 2.0, "x2": 3.0, "y2": 4.0}
    Detection.objects.create(source_image=images[0], algorithm=algorithm, **box)
    Detection.objects.bulk_create(
        [Detection(source_image=images[0], algorithm=algorithm, **box) for _ in range(3)],
        ignore_conflicts=True,
    )
    assert Detection.objects.count() == 1
    with pytest.raises(IntegrityError), transaction.atomic():
        Detection.objects.create(source_image=images[0], algorithm=algorithm, **box)


@pytest.mark.django_db
def test_classification_is_unique_per_detection_algorithm_and_label(images):
    algorithm = Algorithm.objects.create(key="c", name="c", task_type="classification")
    detection = Detection.objects.create(
        source_image=images[0], algorithm=algorithm, x1=0, y1=0, x2=1, y2=1
    )
    Classification.objects.create(detection=detection, algorithm=algorithm, label="moth", score=0.9)
    with pytest.raises(IntegrityError), transaction.atomic():
        Classification.objects.create(
            detection=detection, algorithm=algorithm, label="moth", score=0.8
        )


@pytest.mark.django_db
def test_one_task_per_job_and_image(job, images):
    ImageTask.objects.create(job=job, source_image=images[0])
    with pytest.raises(IntegrityError), transaction.atomic():
        ImageTask.objects.create(job=job, source_image=images[0])


@pytest.mark.django_db
def test_new_job_has_empty_legacy_logs(job):
    assert Job.objects.get(pk=job.pk).legacy_logs == {"stdout": [], "stderr": []}
