"""A web process serves requests from a connection pool: twenty log pages do not open twenty
PostgreSQL sessions (each a backend process forked by the server).

Counted with `pg_stat_database.sessions`, the server's own count of sessions opened on the
test database; the uvicorn process is the only client making requests meanwhile.
"""

from __future__ import annotations

import httpx
import pytest
from django.db import connection

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

REQUESTS = 20


def sessions_opened() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        total = cursor.fetchone()[0]
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # the next read is fresh
    return total


def test_log_pages_reuse_pooled_connections(asgi_server, session_cookie, staged_job):
    base, _ = asgi_server
    url = f"/api/jobs/{staged_job.pk}/logs"
    with httpx.Client(base_url=base, cookies=session_cookie, timeout=30) as client:
        assert client.get(url).status_code == 200  # the pool is open from here on
        before = sessions_opened()
        for _ in range(REQUESTS):
            assert client.get(url).status_code == 200
    # One per request without a pool; the pool opens at most a few more as it grows.
    assert sessions_opened() - before <= 4
