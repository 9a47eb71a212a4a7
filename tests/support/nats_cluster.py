"""A real 3-node JetStream cluster for tests, and who leads what in it.

The cluster is `ami_lab.servers.nats.NatsCluster` in a folder of its own, apart from the
session's single NATS server; tests point `NATS_URL` at it for as long as they need it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import nats

from ami_lab.servers.nats import NatsCluster, NatsNode
from tests.support.polling import wait_until

NODES = 3
REPLICAS = 3


@contextlib.contextmanager
def running_cluster(root: Path) -> Iterator[NatsCluster]:
    """Start a cluster under `root`; stop every node and delete its data afterwards."""
    cluster = NatsCluster(NODES, root=root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.purge()


def heal(cluster: NatsCluster) -> None:
    """Revive every node a test killed, and wait until the cluster answers on each."""
    for node in cluster.nodes:
        if not node.healthy():
            node.revive()


def stream_leader(cluster: NatsCluster, stream: str) -> NatsNode:
    """The node that leads `stream` now (waits through an election)."""
    name = wait_until(lambda: _leader(cluster, stream, None), f"a leader of {stream}")
    return cluster.node(name)


def consumer_leader(cluster: NatsCluster, stream: str, consumer: str) -> NatsNode:
    """The node that leads the consumer now (it need not lead the stream)."""
    name = wait_until(lambda: _leader(cluster, stream, consumer), f"a leader of {consumer}")
    return cluster.node(name)


def stream_info(cluster: NatsCluster, stream: str):
    """`StreamInfo` of `stream`, asked of the cluster (any live node)."""
    return asyncio.run(_stream_info(_live_urls(cluster), stream))


def _leader(cluster: NatsCluster, stream: str, consumer: str | None) -> str | None:
    try:
        return asyncio.run(_ask_leader(_live_urls(cluster), stream, consumer))
    except (nats.errors.Error, TimeoutError):
        return None


async def _ask_leader(urls: list[str], stream: str, consumer: str | None) -> str | None:
    async with _connected(urls) as nc:
        js = nc.jetstream(timeout=2)
        if consumer is None:
            info = await js.stream_info(stream)
        else:
            info = await js.consumer_info(stream, consumer)
        return info.cluster.leader if info.cluster else None


async def _stream_info(urls: list[str], stream: str):
    async with _connected(urls) as nc:
        return await nc.jetstream(timeout=5).stream_info(stream)


def _live_urls(cluster: NatsCluster) -> list[str]:
    return [node.read_state().url for node in cluster.nodes if node.healthy()]


@contextlib.asynccontextmanager
async def _connected(urls: list[str]):
    nc = await nats.connect(urls, connect_timeout=2, max_reconnect_attempts=0)
    try:
        yield nc
    finally:
        await nc.close()
