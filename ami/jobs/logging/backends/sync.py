"""`sync`: one autocommit INSERT per line on the dedicated `logs` connection.

When `emit` returns, the line is committed (or its failure was counted). A connection killed
between two lines is replaced and the write retried once; every INSERT skips a row whose
`key` is already stored, so a retry after a lost commit reply stores nothing twice.

Every row carries its job's partition key (`with_partition_keys`); the writers of the other
backends share these helpers.

The per-line path is kept short (`ami bench logs` compares it with `raw_insert`, one
prepared INSERT per line and nothing else): a job's partition key is looked up once per
process (`KnownKeys`), the thread's cursor is made once per connection (`log_cursor`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import psycopg
from django.db import IntegrityError
from django.db.backends.base.base import BaseDatabaseWrapper

from ami.jobs import log_partitions
from ami.jobs.logging.backends.base import JobLogBackend
from ami.jobs.logging.connection import call_with_reconnect, discard, log_connection
from ami.jobs.logging.rows import LogRow
from ami.jobs.models import JobLog

TABLE = JobLog._meta.db_table
COLUMNS = "job_id, level, message, context, created_at, key, job_partition_key"
CONFLICT = "ON CONFLICT (key, job_partition_key) DO NOTHING"
INSERT_SQL = (
    f"INSERT INTO {TABLE} ({COLUMNS}) VALUES (%s, %s, %s, %s::jsonb, %s, %s, %s) {CONFLICT}"
)
# Many rows in one statement (one commit), for a retry of a batch that may have committed.
INSERT_MANY_SQL = (
    f"INSERT INTO {TABLE} ({COLUMNS}) SELECT * FROM unnest("
    "%s::bigint[], %s::smallint[], %s::text[], %s::jsonb[], %s::timestamptz[], %s::uuid[], "
    f"%s::timestamptz[]) {CONFLICT}"
)

PartitionKeys = dict[int, datetime]


class KnownKeys:
    """The partition keys of jobs this process wrote lines of, each partition made then.

    Instead of `log_partitions.keys_for` on every line (sets, a dict, a range search per
    key): one dict read. It holds while `log_partitions.covered` is the same object:
    a partition made, or anything forgotten (retention, a migration, a retry after a
    dropped partition), replaces that, and this starts over. A partition dropped by
    another process is found by the INSERT itself (`with_partition_keys`).
    """

    MAX = 100_000  # jobs remembered; past this, all are forgotten (a miss is one lookup)

    def __init__(self) -> None:
        self._keys: PartitionKeys = {}
        self._parts: object = None

    def get(self, rows: list[LogRow]) -> PartitionKeys | None:
        """The keys of all the rows' jobs, or None if one is not known (or not valid now)."""
        if log_partitions.covered.parts is not self._parts:
            return None
        keys = self._keys
        if len(rows) == 1:
            key = keys.get(rows[0].job_id)
            return None if key is None else {rows[0].job_id: key}
        found = {row.job_id: keys.get(row.job_id) for row in rows}
        return None if None in found.values() else found

    def learn(self, keys: PartitionKeys) -> None:
        """Remember keys whose partitions exist (as `covered` now says)."""
        parts = log_partitions.covered.parts
        if parts is not self._parts or len(self._keys) >= self.MAX:
            self._keys, self._parts = {}, parts
        self._keys.update(keys)


known_keys = KnownKeys()


def with_partition_keys(
    conn: BaseDatabaseWrapper, rows: list[LogRow], write: Callable[[PartitionKeys], None]
) -> None:
    """`write(keys)` with the partition key of each row's job (`log_partitions.write_keyed`).

    Outside a transaction, jobs already written to skip the lookup; if their partition
    was dropped since, the INSERT fails and stores nothing, and `write_keyed` makes the
    partition again and writes (so `write` may run up to three times: it must be safe to).
    """
    keys = None if conn.in_atomic_block else known_keys.get(rows)
    if keys is not None:
        try:
            write(keys)
            return
        except (psycopg.errors.CheckViolation, IntegrityError) as exc:
            if not log_partitions.is_missing_partition(exc):
                raise
        log_partitions.covered.forget()
    job_ids = {row.job_id for row in rows}
    log_partitions.write_keyed(conn, job_ids, write)
    if not conn.in_atomic_block:
        # Only jobs that exist: one deleted meanwhile was written under a stand-in key.
        known_keys.learn(log_partitions.partition_keys(job_ids, using=conn.alias))


def row_params(row: LogRow, keys: PartitionKeys) -> tuple[Any, ...]:
    """One row's values in `COLUMNS` order."""
    context = json.dumps(row.context)
    return (
        row.job_id, row.level, row.message, context, row.created_at, row.key_text,
        keys[row.job_id],
    )  # fmt: skip


_thread = threading.local()  # this thread's cursor, and the connection it was made on


def log_cursor(conn: BaseDatabaseWrapper) -> psycopg.Cursor:
    """A server-side-binding cursor on the connection, made once per connection.

    Server-side binding with a prepared statement: half the client CPU of Django's
    client-side-binding cursor, and no parse/plan per line on the server. Kept, not made
    per line: a cursor's setup (its adapters map) cost as much as the row's values.
    """
    raw = conn.connection
    if getattr(_thread, "raw", None) is not raw:
        _thread.cursor, _thread.raw = psycopg.Cursor(raw), raw
    return _thread.cursor


def insert_rows(rows: list[LogRow]) -> None:
    """INSERT rows on this thread's log connection, each committed on its own."""
    conn = log_connection()

    def write(keys: PartitionKeys) -> None:
        cursor = log_cursor(conn)
        for row in rows:
            cursor.execute(INSERT_SQL, row_params(row, keys), prepare=True)

    def write_all() -> None:
        if conn.connection is None:  # Django's ensure_connection, without its checks per line
            conn.ensure_connection()
        with_partition_keys(conn, rows, write)

    call_with_reconnect(conn, write_all)


def insert_many(conn: BaseDatabaseWrapper, rows: list[LogRow]) -> None:
    """INSERT rows in one statement (one commit), skipping those already stored (same `key`)."""
    conn.ensure_connection()

    def write(keys: PartitionKeys) -> None:
        columns = list(zip(*(row_params(row, keys) for row in rows), strict=True))
        with psycopg.Cursor(conn.connection) as cursor:
            cursor.execute(INSERT_MANY_SQL, [list(values) for values in columns])

    with_partition_keys(conn, rows, write)


def insert_rows_once(rows: list[LogRow]) -> None:
    """`insert_many` on this thread's log connection, reconnecting once if it was killed."""
    conn = log_connection()
    call_with_reconnect(conn, lambda: insert_many(conn, rows))


class SyncBackend(JobLogBackend):
    name = "sync"

    def write_rows(self, rows: list[LogRow]) -> None:
        insert_rows(rows)

    def release_thread_resources(self) -> None:
        discard(log_connection())
