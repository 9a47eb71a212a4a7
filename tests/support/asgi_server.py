"""The `asgi_server` fixture (registered by tests/conftest.py): uvicorn on the test database."""

from __future__ import annotations

import os

import pytest
from django.db import connections

from ami_lab.live_server import uvicorn_server


def database_url() -> str:
    """The URL of the test database (valid once pytest-django has set it up)."""
    settings = connections["default"].settings_dict
    password = f":{settings['PASSWORD']}" if settings["PASSWORD"] else ""
    host, port = settings["HOST"] or "127.0.0.1", settings["PORT"] or 5432
    return f"postgres://{settings['USER'] or 'postgres'}{password}@{host}:{port}/{settings['NAME']}"


@pytest.fixture(scope="module")
def asgi_server(django_db_setup, tmp_path_factory):
    """A real uvicorn process on the test database, polling fast: (base URL, pid)."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "AMI_SSE_POLL_SECONDS": "0.05",
        "AMI_SSE_HEARTBEAT_SECONDS": "0.5",
    }
    with uvicorn_server(env, tmp_path_factory.mktemp("uvicorn") / "server.log") as server:
        yield server
