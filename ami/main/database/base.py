"""Django's PostgreSQL backend, whose pooled connections are checked without backoff.

psycopg_pool checks a connection when it hands it out (Django asks it to when
CONN_HEALTH_CHECKS is on), and after a failed check it sleeps 1, 2, 4 s... before trying
the next one: a policy for a server that is down. After PostgreSQL restarts, or while its
backends are being terminated, most idle connections in the pool are dead while the server
is up: a request then waited seconds, or failed with PoolTimeout, for what a new connection
gives in milliseconds. Here the pool checks nothing (settings turn CONN_HEALTH_CHECKS off
for a pooled database) and this wrapper does: a dead connection is handed back (the pool
discards it and opens a replacement) and the next one is tried at once, up to the pool's
size.

Without a pool in `OPTIONS` this is Django's backend unchanged.
"""

from __future__ import annotations

from typing import Any

import psycopg
from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        connection = super().get_new_connection(conn_params)
        pool = self.pool
        if pool is None:
            return connection
        for _ in range(pool.max_size):
            if alive(connection):
                return connection
            pool.putconn(connection)  # broken: discarded, a replacement is being opened
            connection = pool.getconn()
        return connection  # dead too: the caller's first statement fails, as without a pool


def alive(connection: psycopg.Connection) -> bool:
    """True if the connection answers an empty statement (a pooled one is in autocommit)."""
    try:
        connection.execute("")
    except psycopg.OperationalError:
        return False
    return True
