"""A 30 MB result post to a real uvicorn process: it is parsed as a stream, so the server's
memory grows by far less than the body, and the queued messages are small (our payload
keeps what we store, not the wire's extras).
(`ami bench batch` runs the same measurement with 150 MB: docs/benchmarks.md.)"""

from __future__ import annotations

import pytest

from ami.ml.models import ProcessingService
from ami_lab.bench.batch import MB, algorithms_of, post_and_measure, write_batch
from tests.support.ml import queued_results, reserve_all

pytestmark = pytest.mark.django_db(transaction=True)

BATCH = 30 * MB
MAX_GROWTH = 200 * MB  # generous: the body alone would be 30 MB, its parsed objects ~10x
MAX_MESSAGE = 1 * MB  # one queued task (our payload keeps the label, not the scores)


def test_a_30_mb_batch_is_taken_with_bounded_memory(
    asgi_server, started_job, pipeline, broker, tmp_path
):
    base, pid = asgi_server
    service, key = ProcessingService.create_with_key("big batch service")
    service.projects.add(started_job.project)
    tasks = reserve_all(started_job.pk)
    path = tmp_path / "batch.json"
    size = write_batch(path, tasks, algorithms_of(pipeline), BATCH)
    assert size > BATCH * 0.9

    measured = post_and_measure(base, pid, key, started_job.pk, path)
    print(measured.summary())

    assert measured.status == 200, measured.body
    assert measured.body["results_queued"] == len(tasks)
    assert measured.growth < MAX_GROWTH, measured.summary()
    assert len(queued_results(broker)) == len(tasks)
    messages = broker.lrange("ml_results", 0, -1)
    assert max(len(message) for message in messages) < MAX_MESSAGE


def test_a_big_bad_batch_queues_nothing(asgi_server, started_job, pipeline, broker, tmp_path):
    base, pid = asgi_server
    service, key = ProcessingService.create_with_key("big bad batch service")
    service.projects.add(started_job.project)
    tasks = reserve_all(started_job.pk)
    last = max(tasks)  # the last result in the post is not a task of this job
    path = tmp_path / "batch.json"
    write_batch(path, {**tasks, last: "$JS.ACK.elsewhere.1"}, algorithms_of(pipeline), 5 * MB)

    measured = post_and_measure(base, pid, key, started_job.pk, path)

    assert measured.status == 400, measured.body
    assert f"results.{len(tasks) - 1}.reply_subject" in measured.body["detail"]
    assert broker.llen("ml_results") == 0
