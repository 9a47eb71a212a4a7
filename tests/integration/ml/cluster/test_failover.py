"""The task queue on a real 3-node JetStream cluster: several servers in `NATS_URL`, R3
streams, and publish, reserve and ack retried across the SIGKILL of a leader node."""

from __future__ import annotations

import logging
import time

import pytest

from ami.ml.orchestration import nats
from ami_lab.processes import free_port
from tests.support.nats_cluster import REPLICAS, consumer_leader, stream_info, stream_leader
from tests.support.polling import wait_until

logger = logging.getLogger(__name__)

JOB = 7001  # job ids: no job rows are needed, only their streams
TASKS = 20


def payloads(job_id: int, count: int = TASKS) -> list[dict]:
    return [{"job_id": job_id, "image_id": image_id} for image_id in range(1, count + 1)]


def timed(call, *args):
    """(result, seconds) of `call(*args)`."""
    started = time.monotonic()
    result = call(*args)
    return result, time.monotonic() - started


def test_nats_url_lists_several_servers(on_cluster, settings):
    assert nats.server_urls(" nats://a:1 , nats://b:2,") == ["nats://a:1", "nats://b:2"]
    nodes = [node.read_state().url for node in on_cluster.nodes]
    dead = f"nats://127.0.0.1:{free_port()}"  # a listed server that is down is skipped
    settings.NATS_URL = ", ".join([dead, *nodes])
    assert nats.publish_tasks(JOB, payloads(JOB), fresh=True) == TASKS
    # The consumer leader counts what the stream stored a moment after the publish acks
    # (seen as 0 under load): wait for its count, which must then be exact.
    wait_until(lambda: nats.consumer_state(JOB).pending >= TASKS, "the consumer to count")
    assert nats.consumer_state(JOB).pending == TASKS
    assert nats.delete_queue(JOB)


def test_streams_get_the_replicas_setting(on_cluster):
    nats.create_queue(JOB + 1, fresh=True)
    info = stream_info(on_cluster, nats.stream_name(JOB + 1))
    assert info.config.num_replicas == REPLICAS
    assert info.cluster.leader
    assert len(info.cluster.replicas) == REPLICAS - 1  # the followers
    nats.delete_queue(JOB + 1)


def test_publish_rides_out_the_loss_of_the_stream_leader(on_cluster):
    job = JOB + 2
    nats.create_queue(job, fresh=True)
    nats.publish(job, payloads(job)[:5])
    stream_leader(on_cluster, nats.stream_name(job)).kill()
    published, seconds = timed(nats.publish, job, payloads(job))  # 5 of them again
    logger.warning("publish across a leader kill: %.2f s", seconds)
    assert published == TASKS
    assert nats.consumer_state(job).pending == TASKS  # the repeated ids were dropped
    nats.delete_queue(job)


def test_reserve_rides_out_the_loss_of_the_consumer_leader(on_cluster):
    job = JOB + 3
    nats.publish_tasks(job, payloads(job), fresh=True)
    consumer_leader(on_cluster, nats.stream_name(job), nats.consumer_name(job)).kill()
    reserved, seconds = timed(nats.reserve, job, TASKS)
    logger.warning("reserve across a leader kill: %.2f s", seconds)
    assert sorted(task.payload["image_id"] for task in reserved) == list(range(1, TASKS + 1))
    nats.delete_queue(job)


def test_ack_rides_out_the_loss_of_the_consumer_leader(on_cluster):
    job = JOB + 4
    nats.publish_tasks(job, payloads(job), fresh=True)
    reserved = nats.reserve(job, TASKS)
    assert len(reserved) == TASKS
    consumer_leader(on_cluster, nats.stream_name(job), nats.consumer_name(job)).kill()
    _, seconds = timed(nats.ack_all, [task.reply_subject for task in reserved])
    logger.warning("ack across a leader kill: %.2f s", seconds)
    state = nats.consumer_state(job)
    assert (state.pending, state.ack_pending, state.redelivered) == (0, 0, 0)
    nats.delete_queue(job)


def test_a_deleted_queue_still_fails_at_once(on_cluster, settings):
    job = JOB + 5
    nats.publish_tasks(job, payloads(job, 2), fresh=True)
    reserved = nats.reserve(job, 2)
    nats.delete_queue(job)
    wait_until(lambda: nats.consumer_state(job) is None, "the queue to be gone")
    started = time.monotonic()
    # No responders, or, when a node has not yet dropped the deleted consumer's interest in
    # its ack subject (seen under load), one request timeout: either way not retried.
    with pytest.raises((nats.NoRespondersError, nats.NatsTimeoutError)):
        nats.ack(reserved[0].reply_subject)
    with pytest.raises(nats.TaskQueueGone):
        nats.reserve(job, 2)
    assert time.monotonic() - started < settings.NATS_FAILOVER_TIMEOUT
