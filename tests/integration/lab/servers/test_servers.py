"""Smoke tests: each real server answers a real client."""

from __future__ import annotations

import asyncio
import uuid

import nats
import pytest
import redis
from django.conf import settings
from django.db import connections

from ami.ml.orchestration.nats import server_urls


@pytest.mark.django_db(databases=["default", "logs"])
def test_postgres_answers_on_both_aliases():
    for alias in ("default", "logs"):
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT current_database(), version()")
            name, version = cursor.fetchone()
        assert name.startswith("test_")
        assert "PostgreSQL" in version


@pytest.mark.django_db(transaction=True, databases=["default", "logs"])
def test_log_alias_is_autocommit_with_lock_timeout():
    conn = connections["logs"]
    with conn.cursor() as cursor:
        cursor.execute("SELECT setting FROM pg_settings WHERE name = 'lock_timeout'")
        assert cursor.fetchone()[0] == str(settings.LOG_DB_LOCK_TIMEOUT_MS)
    assert conn.get_autocommit()


def test_nats_jetstream_round_trip():
    async def round_trip() -> bytes:
        nc = await nats.connect(server_urls(settings.NATS_URL))  # one, or a cluster's
        js = nc.jetstream()
        stream = f"smoke_{uuid.uuid4().hex[:8]}"
        await js.add_stream(name=stream, subjects=[f"{stream}.>"])
        try:
            await js.publish(f"{stream}.task", b"hello")
            sub = await js.pull_subscribe(f"{stream}.task", durable="smoke")
            (msg,) = await sub.fetch(1, timeout=5)
            await msg.ack_sync()
            return msg.data
        finally:
            await js.delete_stream(stream)
            await nc.close()

    assert asyncio.run(round_trip()) == b"hello"


def test_redis_round_trip():
    client = redis.Redis.from_url(settings.REDIS_URL)
    key = f"smoke:{uuid.uuid4().hex}"
    client.set(key, "ok", ex=10)
    assert client.get(key) == b"ok"
    client.delete(key)
