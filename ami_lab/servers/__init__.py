"""Embedded PostgreSQL, NATS and Redis for development and tests.

A server whose URL variable (`DATABASE_URL`, `NATS_URL`, `REDIS_URL`) is set is external:
it is used as given and no embedded one starts. NATS is one server, or a JetStream cluster
(`AMI_NATS_CLUSTER=3`, `ami services up --cluster`; a cluster already running is kept).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass

from ami_lab.servers.base import EmbeddedServer, ServiceError
from ami_lab.servers.nats import CLUSTER_ENV, NatsCluster, NatsServer
from ami_lab.servers.paths import run_dir
from ami_lab.servers.postgres import PostgresServer
from ami_lab.servers.redis import RedisServer

__all__ = [
    "ServiceError",
    "ServiceStatus",
    "SERVERS",
    "up",
    "down",
    "status",
    "urls",
    "use_nats_cluster",
    "dev_environment",
    "embedded_environment",
]

SECRET_KEY_VAR = "DJANGO_SECRET_KEY"
SECRET_KEY_FILE = "secret-key"
REPLICAS_VAR = "AMI_NATS_REPLICAS"


def _nats() -> EmbeddedServer | NatsCluster:
    """A cluster if `AMI_NATS_CLUSTER` asks for one or one runs already, else one server."""
    size = int(os.environ.get(CLUSTER_ENV) or 0)
    if size > 1:
        return NatsCluster(size)
    running = NatsCluster()
    return running if running.read_state() else NatsServer()


SERVERS: dict[str, EmbeddedServer | NatsCluster] = {
    server.name: server for server in (PostgresServer(), _nats(), RedisServer())
}


def use_nats_cluster(size: int) -> None:
    """Make the embedded NATS a cluster of `size` nodes (refused while one server runs)."""
    current = SERVERS["nats"]
    if isinstance(current, NatsCluster):
        return
    if current.read_state():
        raise ServiceError("a single NATS server runs; stop it first: ami services down")
    SERVERS["nats"] = NatsCluster(size)


@dataclass
class ServiceStatus:
    name: str
    env_var: str
    url: str | None
    external: bool
    healthy: bool
    pid: int | None = None


def _external_url(server: EmbeddedServer) -> str | None:
    return os.environ.get(server.env_var) or None


def up() -> list[str]:
    """Start every embedded server that is not external; return the names started or reused."""
    started = []
    for server in SERVERS.values():
        if _external_url(server) is None:
            server.start()
            started.append(server.name)
    return started


def down(*, purge: bool = False) -> list[str]:
    """Stop every embedded server; return the names that were running.

    `purge` also deletes their data, wherever it lives (see `ami_lab.servers.postgres`).
    """
    return [
        server.name for server in SERVERS.values() if (server.purge() if purge else server.stop())
    ]


def status() -> list[ServiceStatus]:
    """Report each server: where it is and whether a real connection succeeds."""
    report = []
    for server in SERVERS.values():
        external = _external_url(server)
        if external:
            try:
                server.ping(external)
                healthy = True
            except Exception:  # any connection failure means unhealthy
                healthy = False
            report.append(ServiceStatus(server.name, server.env_var, external, True, healthy))
            continue
        state = server.read_state()
        report.append(
            ServiceStatus(
                server.name,
                server.env_var,
                state.url if state else None,
                False,
                server.healthy(),
                state.pid if state else None,
            )
        )
    return report


def urls() -> dict[str, str]:
    """Map each URL variable to its URL: the environment's, else the embedded server's state.

    Reads files only; starts nothing. A variable is missing when neither exists.
    """
    found = {}
    for server in SERVERS.values():
        url = _external_url(server)
        if url is None:
            state = server.read_state()
            url = state.url if state else None
        if url:
            found[server.env_var] = url
    return found


def dev_secret_key() -> str:
    """This checkout's development secret key: made once, kept in the run folder (0600)."""
    path = run_dir() / SECRET_KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # another process made it first
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as file:
                file.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


def dev_environment() -> dict[str, str]:
    """What a development process needs in its environment: the servers' URLs (see `urls`),
    this checkout's secret key, and on the embedded NATS cluster a stream copy per node
    (`AMI_NATS_REPLICAS`, unless set). For the lab's commands and the tests."""
    env = {**urls(), SECRET_KEY_VAR: os.environ.get(SECRET_KEY_VAR) or dev_secret_key()}
    cluster = SERVERS["nats"]
    if isinstance(cluster, NatsCluster) and _external_url(cluster) is None:
        nodes = len(cluster.nodes)
        env[REPLICAS_VAR] = os.environ.get(REPLICAS_VAR) or str(nodes)
    return env


def embedded_environment() -> dict[str, str]:
    """The `ami.environment` hook of the `ami` command: the development environment when
    an embedded server of this checkout runs, else nothing (production sets its own)."""
    if not any(server.read_state() for server in SERVERS.values()):
        return {}
    return dev_environment()
