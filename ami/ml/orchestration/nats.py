"""The per-job JetStream task queue: one stream and one durable pull consumer per job.

Each job's tasks live in their own stream (`<namespace>_job_<id>`), so cleaning up a job is
deleting one stream. Messages are acknowledged explicitly, only after the result is saved,
and the ack is confirmed by the server (`+ACK` sent as a request, its reply awaited).

All calls are synchronous (Django views and Celery tasks are); they run on one asyncio loop
per process, in a background thread that keeps one NATS connection open.

On a cluster (`NATS_URL` lists several servers, comma-separated), every stream is created
with `NATS_REPLICAS` copies, and every call retries across a leader election (`failover`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import nats
from django.conf import settings
from django.db import connections
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import api
from nats.js.errors import NotFoundError

from ami.ml.orchestration.failover import NoLeader, definitely_missing, retrying

logger = logging.getLogger(__name__)

T = TypeVar("T")
TASK_ID_HEADER = "Nats-Msg-Id"
STATUS_HEADER = "Status"
# Statuses that end a no_wait pull: 404 no messages, 408 request expired, 409 e.g. deleted.
END_OF_PULL = {"404", "408", "409"}
NO_RESPONDERS = "503"
LEADERSHIP_CHANGE = "leadership change"  # a 409's description when the consumer's leader moved
PROBE_TIMEOUT = 1.0  # seconds: asking whether a queue still exists, between two retries
DUPLICATE_WINDOW = 3600.0  # seconds the stream remembers a message id
DEFAULT_PUBLISH_CHUNK = 200  # messages in flight together while publishing
ASYNC_SIGNALS = {
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGALRM,
    signal.SIGCHLD,
}

__all__ = [
    "NatsError",
    "NoRespondersError",
    "NatsTimeoutError",
    "ReservedTask",
    "TaskQueueGone",
    "ack",
    "consumer_state",
    "create_queue",
    "delete_queue",
    "disconnect",
    "publish",
    "publish_tasks",
    "reserve",
]


class TaskQueueGone(RuntimeError):
    """The job's stream or consumer does not exist (never created, or deleted at the end)."""


@dataclass(frozen=True)
class ReservedTask:
    payload: dict
    reply_subject: str
    delivered: int


@dataclass(frozen=True)
class QueueState:
    pending: int
    ack_pending: int
    redelivered: int
    delivered: int


def server_urls(value: str) -> list[str]:
    """The servers of a `NATS_URL`: one URL, or several comma-separated (a cluster)."""
    return [url.strip() for url in value.split(",") if url.strip()]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)


def namespace() -> str:
    """`NATS_NAMESPACE`, else the name of the database in use (read at call time)."""
    return _safe(settings.NATS_NAMESPACE or str(connections["default"].settings_dict["NAME"]))


def stream_name(job_id: int) -> str:
    return f"{namespace()}_job_{job_id}"


def subject(job_id: int) -> str:
    return f"{namespace()}.job.{job_id}.tasks"


def consumer_name(job_id: int) -> str:
    return f"job_{job_id}_workers"


class _Bridge:
    """One NATS connection on an event loop in a daemon thread; callable from any thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._serve, daemon=True, name="nats")
        self.thread.start()
        self.client: Client | None = None
        self.servers: list[str] = []
        self.lock = asyncio.Lock()

    def _serve(self) -> None:
        # Process-directed signals must reach the main thread: Celery's soft time limit
        # (SIGUSR1) delivered to this thread would not interrupt a main thread blocked in
        # a query, and the task would run on to the hard limit.
        signal.pthread_sigmask(signal.SIG_BLOCK, ASYNC_SIGNALS)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError as exc:
            future.cancel()
            raise NatsTimeoutError from exc

    async def connection(self) -> Client:
        """The open connection; a new one if it was closed or `NATS_URL` changed (tests)."""
        servers = server_urls(settings.NATS_URL)
        async with self.lock:
            if self.client is not None and not self.client.is_closed and servers != self.servers:
                await self.client.close()
            if self.client is None or self.client.is_closed:
                self.client = await nats.connect(
                    servers,
                    connect_timeout=settings.NATS_REQUEST_TIMEOUT,
                    max_reconnect_attempts=-1,
                    error_cb=_log_error,
                )
                self.servers = servers
            return self.client


async def _log_error(exc: Exception) -> None:
    logger.warning("NATS connection error: %s", exc)


_bridge: _Bridge | None = None
_bridge_lock = threading.Lock()


def _get_bridge() -> _Bridge:
    global _bridge
    with _bridge_lock:
        if _bridge is None:
            _bridge = _Bridge()
        return _bridge


def _forget_bridge_after_fork() -> None:
    # A forked child (a Celery pool process) must not share its parent's socket or loop.
    global _bridge, _bridge_lock
    _bridge = None
    _bridge_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_bridge_after_fork)


def disconnect() -> None:
    """Close this process's NATS connection, if open (the next call opens a new one).

    For a process about to lose its servers on purpose (a test's cluster being stopped):
    an open connection would keep trying to reconnect to them.
    """
    with _bridge_lock:
        bridge = _bridge
    if bridge is not None and bridge.client is not None:
        bridge.run(bridge.client.close(), settings.NATS_REQUEST_TIMEOUT)


def _call(coro_fn, *args: Any, timeout: float | None = None) -> Any:
    bridge = _get_bridge()
    limit = timeout if timeout is not None else settings.NATS_REQUEST_TIMEOUT * 3
    limit += settings.NATS_FAILOVER_TIMEOUT + settings.NATS_REQUEST_TIMEOUT  # see `failover`

    async def call() -> Any:
        return await coro_fn(await bridge.connection(), *args)

    return bridge.run(call(), limit)


# -- whether a queue is gone (asked between two retries) ----------------------------------------
async def _stream_missing(nc: Client, stream: str) -> bool:
    js = nc.jetstream(timeout=PROBE_TIMEOUT)
    return await definitely_missing(js.stream_info(stream), NotFoundError)


async def _consumer_missing(nc: Client, stream: str, consumer: str) -> bool:
    js = nc.jetstream(timeout=PROBE_TIMEOUT)
    return await definitely_missing(js.consumer_info(stream, consumer), NotFoundError)


def _ack_target(reply_subject: str) -> tuple[str, str] | None:
    """(stream, consumer) of an ack subject: `$JS.ACK.<stream>.<consumer>.<7 more>`, or
    with a domain `$JS.ACK.<domain>.<account>.<stream>.<consumer>...`; None if neither."""
    tokens = reply_subject.split(".")
    if tokens[:2] != ["$JS", "ACK"]:
        return None
    if len(tokens) == 9:
        return tokens[2], tokens[3]
    if len(tokens) >= 11:
        return tokens[4], tokens[5]
    return None


# -- operations ---------------------------------------------------------------------------------
async def _create_queue(nc: Client, job_id: int, fresh: bool) -> bool:
    return await retrying(lambda: _create_queue_once(nc, job_id, fresh), f"create job {job_id}")


async def _create_queue_once(nc: Client, job_id: int, fresh: bool) -> bool:
    js = nc.jetstream(timeout=settings.NATS_REQUEST_TIMEOUT)
    if fresh:
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(stream_name(job_id))
    try:
        await js.stream_info(stream_name(job_id))
        existed = True
    except NotFoundError:
        existed = False
    await js.add_stream(
        name=stream_name(job_id),
        subjects=[subject(job_id)],
        retention=api.RetentionPolicy.WORK_QUEUE,
        storage=api.StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW,
        num_replicas=settings.NATS_REPLICAS,
    )
    await js.add_consumer(
        stream_name(job_id),
        api.ConsumerConfig(
            durable_name=consumer_name(job_id),
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=settings.NATS_TASK_ACK_WAIT,
            max_deliver=settings.NATS_TASK_MAX_DELIVER,
            max_ack_pending=-1,
            filter_subject=subject(job_id),
        ),
    )
    return existed


async def _publish(nc: Client, job_id: int, payloads: list[dict]) -> int:
    # A retry publishes the whole chunk again: the stream drops the ids it already holds.
    return await retrying(
        lambda: _publish_once(nc, job_id, payloads),
        f"publish to job {job_id}",
        gone=lambda: _stream_missing(nc, stream_name(job_id)),
    )


async def _publish_once(nc: Client, job_id: int, payloads: list[dict]) -> int:
    js = nc.jetstream(timeout=settings.NATS_REQUEST_TIMEOUT)
    await asyncio.gather(
        *(
            js.publish(
                subject(job_id),
                json.dumps(payload).encode(),
                stream=stream_name(job_id),
                headers={TASK_ID_HEADER: f"{job_id}-{payload['image_id']}"},
            )
            for payload in payloads
        )
    )
    return len(payloads)


def create_queue(job_id: int, *, fresh: bool) -> bool:
    """Create the job's stream and consumer (idempotent); True if the stream already existed.

    `fresh` deletes a leftover stream of the same name first.
    """
    return _call(_create_queue, job_id, fresh)


def publish(job_id: int, payloads: list[dict]) -> int:
    """Publish one message per task and wait until the stream confirmed every one.

    Republishing a task is harmless within `DUPLICATE_WINDOW`: the message id `<job>-<image>`
    is deduplicated by the stream. Keep batches small (`publish_chunk()`): they are in flight
    together, and a failure leaves unknown which of them were stored.
    """
    timeout = settings.NATS_REQUEST_TIMEOUT * (3 + len(payloads) / DEFAULT_PUBLISH_CHUNK)
    return _call(_publish, job_id, payloads, timeout=timeout)


def publish_tasks(job_id: int, payloads: list[dict], *, fresh: bool) -> int:
    """Create the job's queue and publish every task, in chunks (for tools and tests)."""
    create_queue(job_id, fresh=fresh)
    chunk = publish_chunk()
    for start in range(0, len(payloads), chunk):
        publish(job_id, payloads[start : start + chunk])
    return len(payloads)


def publish_chunk() -> int:
    """Messages published together: `NATS_PUBLISH_CHUNK`, else DEFAULT_PUBLISH_CHUNK."""
    return int(getattr(settings, "NATS_PUBLISH_CHUNK", DEFAULT_PUBLISH_CHUNK))


async def _reserve(nc: Client, job_id: int, count: int) -> list[ReservedTask]:
    stream, consumer = stream_name(job_id), consumer_name(job_id)
    try:
        return await retrying(
            lambda: _reserve_once(nc, job_id, count),
            f"reserve from job {job_id}",
            gone=lambda: _consumer_missing(nc, stream, consumer),
        )
    except NoLeader as exc:
        if await _consumer_missing(nc, stream, consumer):
            raise TaskQueueGone(f"job {job_id} has no task queue") from exc
        raise  # no leader for NATS_FAILOVER_TIMEOUT: the caller answers "retry later"


async def _reserve_once(nc: Client, job_id: int, count: int) -> list[ReservedTask]:
    # One `no_wait` pull request: the server answers at once with what is available and an
    # end-of-pull status, so no pull request outlives this call and no message is delivered
    # to an inbox nobody reads (it would sit unacked until ack_wait expires).
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    tasks: list[ReservedTask] = []
    try:
        await nc.publish(
            f"$JS.API.CONSUMER.MSG.NEXT.{stream_name(job_id)}.{consumer_name(job_id)}",
            json.dumps({"batch": count, "no_wait": True}).encode(),
            reply=inbox,
        )
        while len(tasks) < count:
            try:
                msg = await sub.next_msg(timeout=settings.NATS_REQUEST_TIMEOUT)
            except NatsTimeoutError:
                if not tasks:
                    raise  # no answer at all (a no_wait pull gets one at once): retried
                break
            status = (msg.headers or {}).get(STATUS_HEADER)
            if status == NO_RESPONDERS or (not tasks and _leader_moved(msg)):
                raise NoLeader(f"job {job_id}: {msg.headers}")  # or the queue is gone
            if status in END_OF_PULL:
                if status == "409" or (not tasks and _missing(msg)):
                    raise TaskQueueGone(f"job {job_id}: {msg.headers}")
                break
            if status:
                continue
            tasks.append(ReservedTask(json.loads(msg.data), msg.reply, msg.metadata.num_delivered))
    finally:
        await sub.unsubscribe()
    return tasks


def _leader_moved(msg: Any) -> bool:
    headers = msg.headers or {}
    return headers.get(STATUS_HEADER) == "409" and LEADERSHIP_CHANGE in _description(msg)


def _description(msg: Any) -> str:
    return (msg.headers or {}).get("Description", "").lower()


def _missing(msg: Any) -> bool:
    description = _description(msg)
    return "consumer" in description and "not found" in description


async def _consumer_exists(nc: Client, job_id: int) -> None:
    js = nc.jetstream(timeout=settings.NATS_REQUEST_TIMEOUT)
    try:
        await retrying(
            lambda: js.consumer_info(stream_name(job_id), consumer_name(job_id)),
            f"look up job {job_id}",
        )
    except NotFoundError as exc:
        raise TaskQueueGone(f"job {job_id} has no task queue") from exc


def reserve(job_id: int, count: int) -> list[ReservedTask]:
    """Take up to `count` tasks from the job's queue without waiting for more to arrive."""
    try:
        return _call(_reserve, job_id, count)
    except NoRespondersError as exc:
        raise TaskQueueGone(f"job {job_id} has no task queue") from exc


def ensure_queue_exists(job_id: int) -> None:
    """Raise TaskQueueGone unless the job's consumer exists."""
    _call(_consumer_exists, job_id)


async def _ack(nc: Client, reply_subject: str) -> None:
    target = _ack_target(reply_subject)

    async def gone() -> bool:
        return target is None or await _consumer_missing(nc, *target)

    await retrying(
        lambda: nc.request(reply_subject, b"+ACK", timeout=settings.NATS_REQUEST_TIMEOUT),
        "ack",
        gone=gone,
    )


def ack(reply_subject: str) -> None:
    """Acknowledge one task and wait for the server's confirmation.

    Raises NatsTimeoutError (or NoRespondersError when the stream is gone) if unconfirmed.
    """
    _call(_ack, reply_subject)


async def _ack_all(nc: Client, reply_subjects: list[str]) -> None:
    outcomes = await asyncio.gather(
        *(_ack(nc, subject) for subject in reply_subjects), return_exceptions=True
    )
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


def ack_all(reply_subjects: list[str]) -> None:
    """Acknowledge several tasks at once and wait for every confirmation.

    The acks travel together (one round trip's wait, not one per task). Each is sent even
    if another fails; then the first failure is raised, as `ack` raises it.
    """
    if reply_subjects:
        _call(_ack_all, reply_subjects)


async def _delete(nc: Client, job_id: int) -> bool:
    js = nc.jetstream(timeout=settings.NATS_REQUEST_TIMEOUT)
    try:
        return await retrying(lambda: js.delete_stream(stream_name(job_id)), f"delete job {job_id}")
    except NotFoundError:
        return False


def delete_queue(job_id: int) -> bool:
    """Delete the job's stream (and with it its consumer); False if there was none."""
    return _call(_delete, job_id)


async def _state(nc: Client, job_id: int) -> QueueState | None:
    js = nc.jetstream(timeout=settings.NATS_REQUEST_TIMEOUT)
    try:
        info = await retrying(
            lambda: js.consumer_info(stream_name(job_id), consumer_name(job_id)),
            f"state of job {job_id}",
        )
    except NotFoundError:
        return None
    return QueueState(
        pending=info.num_pending or 0,
        ack_pending=info.num_ack_pending or 0,
        redelivered=info.num_redelivered or 0,
        delivered=(info.delivered.stream_seq if info.delivered else 0) or 0,
    )


def consumer_state(job_id: int) -> QueueState | None:
    """The consumer's counters (for tests and the demo), or None if the queue is gone."""
    return _call(_state, job_id)
