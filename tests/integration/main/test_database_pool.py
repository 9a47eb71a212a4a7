"""Pooled connections that PostgreSQL terminated are replaced at once (ami.main.database).

A pool of three connections on the test database, all three terminated by the server, then a
new connection asked for: ours comes back working without waiting; psycopg_pool's own check
(what Django uses with CONN_HEALTH_CHECKS) sleeps about a second before each retry.
"""

from __future__ import annotations

import time
import uuid

import pytest
from django.db import connection
from django.db.backends.postgresql import base as django_postgresql

from ami.main.database import base as ami_database

pytestmark = pytest.mark.django_db(transaction=True)

POOL_SIZE = 3
PSYCOPG_FIRST_BACKOFF = 0.9  # s: psycopg_pool's first retry delay (1 s, -10 % jitter)


def pooled_wrapper(wrapper_class: type, health_checks: bool) -> tuple:
    """A database wrapper with a full pool of its own (a unique alias and application name)."""
    name = f"pool-test-{uuid.uuid4().hex[:8]}"
    settings = {
        **connection.settings_dict,
        "CONN_MAX_AGE": 0,
        "CONN_HEALTH_CHECKS": health_checks,
        "OPTIONS": {
            **connection.settings_dict["OPTIONS"],
            "application_name": name,
            "pool": {"min_size": POOL_SIZE, "max_size": POOL_SIZE, "timeout": 10},
        },
    }
    wrapper = wrapper_class(settings, alias=name)
    wrapper.pool.open(wait=True)
    return wrapper, name


def terminate(application_name: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = %s",
            [application_name],
        )
        return cursor.fetchone()[0]


def seconds_to_a_working_connection(wrapper) -> float:
    began = time.monotonic()
    wrapper.connect()
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT 1")
    return time.monotonic() - began


@pytest.mark.parametrize(
    ("wrapper_class", "health_checks", "waits"),
    [
        pytest.param(ami_database.DatabaseWrapper, False, False, id="ami.main.database"),
        pytest.param(django_postgresql.DatabaseWrapper, True, True, id="psycopg_pool check"),
    ],
)
def test_terminated_pooled_connections_are_replaced(wrapper_class, health_checks, waits):
    wrapper, name = pooled_wrapper(wrapper_class, health_checks)
    try:
        assert terminate(name) == POOL_SIZE
        seconds = seconds_to_a_working_connection(wrapper)
    finally:
        wrapper.close()
        wrapper.close_pool()
    assert (seconds >= PSYCOPG_FIRST_BACKOFF) is waits, seconds


def test_live_pooled_connections_are_reused():
    """While the server is fine the check discards nothing: five connections asked for, at
    most the pool's three backends serve them."""
    wrapper, _ = pooled_wrapper(ami_database.DatabaseWrapper, False)
    try:
        pids = set()
        for _ in range(5):
            wrapper.connect()
            pids.add(wrapper.connection.info.backend_pid)
            wrapper.close()
    finally:
        wrapper.close_pool()
    assert 1 <= len(pids) <= POOL_SIZE
