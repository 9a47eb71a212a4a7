"""Move job log lines from Redis streams to JobLog: batch by batch, acked only after commit.

One drainer at a time per stream (its lease), so a writer's lines are stored in the order it
emitted them. A batch is one `INSERT ... ON CONFLICT DO NOTHING` of the entries' JSON as
PostgreSQL parses it (one commit), then its entries are deleted from Redis. A drainer killed
between the two leaves the batch in Redis; the next drainer writes it again and the unique
`key` makes that a no-op: only what is missing is stored. A batch PostgreSQL refuses goes
row by row (COPY, then single INSERTs for a refused batch).
Two drainers that overlap (a lease that expired under a slow one) are safe the same way: an
INSERT of a key another transaction is inserting waits for that transaction, then skips.

A database error leaves the batch in Redis for the next pass: nothing is lost while the
database is down, only delayed. A row the database refuses is dropped alone and counted,
with a marker line for its job (as the other backends do).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import psycopg

from ami.jobs import log_partitions
from ami.jobs.logging.backends.buffered import copy_rows
from ami.jobs.logging.backends.redis_stream import (
    Entry,
    Namespace,
    Stream,
    connect,
    decode,
    new_token,
)
from ami.jobs.logging.backends.sync import COLUMNS, CONFLICT, TABLE, insert_rows_once
from ami.jobs.logging.connection import call_with_reconnect, log_connection
from ami.jobs.logging.errors import LOST_ERRORS, REFUSED_ERRORS, FailureReporter
from ami.jobs.logging.rows import LogRow
from ami.jobs.logging.salvage import refused_marker, write_markers

# The entries' JSON is parsed by PostgreSQL, not by the drainer: a thread of a writer
# process that decodes a batch in Python holds the GIL, and every `emit` of that process
# waits for it (docs/benchmarks.md). Ordered by position: ids follow the emit order.
RAW_INSERT_SQL = f"""
INSERT INTO {TABLE} ({COLUMNS})
SELECT (e.value->>0)::bigint, (e.value->>1)::smallint, e.value->>4, (e.value->5)::jsonb,
       timestamptz 'epoch' + (e.value->>2)::bigint * interval '1 microsecond',
       (e.value->>3)::uuid, k.partition_key
FROM json_array_elements(%s::json) WITH ORDINALITY AS e (value, n)
JOIN unnest(%s::bigint[], %s::timestamptz[]) AS k (job_id, partition_key)
  ON k.job_id = (e.value->>0)::bigint
ORDER BY e.n
{CONFLICT}"""


def store_entries(entries: list[Entry], reporter: FailureReporter) -> None:
    """Commit a batch of entries as they are in Redis (one INSERT, skipping keys already
    stored); a batch PostgreSQL refuses, or a malformed entry, goes the row-by-row way."""
    try:
        job_ids = {int(entry.job_id) for entry in entries}
        payload = b"[" + b",".join(entry.data for entry in entries) + b"]"
    except (TypeError, ValueError):
        store(decoded(entries, reporter), reporter)
        return
    conn = log_connection()

    def write(keys: dict) -> None:
        ids = list(keys)
        with psycopg.Cursor(conn.connection) as cursor:
            cursor.execute(RAW_INSERT_SQL, [payload.decode(), ids, [keys[i] for i in ids]])

    def write_all() -> None:
        conn.ensure_connection()
        log_partitions.write_keyed(conn, job_ids, write)

    try:
        call_with_reconnect(conn, write_all)
    except LOST_ERRORS:
        raise
    except REFUSED_ERRORS:
        store(decoded(entries, reporter), reporter)


def store(rows: list[LogRow], reporter: FailureReporter) -> None:
    """Commit rows to JobLog, skipping those already stored; raise LOST_ERRORS if the
    database could not be reached (the caller keeps the batch in Redis)."""
    if not rows:
        return
    try:
        copy_rows(rows)
    except psycopg.errors.UniqueViolation:
        # A batch delivered again (its drainer died after the commit, before the ack).
        insert_rows_once(rows)
    except LOST_ERRORS:
        raise
    except REFUSED_ERRORS:
        store_one_by_one(rows, reporter)


def store_one_by_one(rows: list[LogRow], reporter: FailureReporter) -> None:
    """Write each row alone: drop (and count) only those refused. A lost connection raises,
    so the batch stays in Redis (rows stored so far are skipped on the next try)."""
    refused: Counter[int] = Counter()
    for row in rows:
        try:
            insert_rows_once([row])
        except LOST_ERRORS:
            raise
        except REFUSED_ERRORS as exc:
            refused[row.job_id] += 1
            reporter.refused(exc)
    markers = [refused_marker(job, n) for job, n in refused.items()]
    write_markers(insert_rows_once, markers, reporter)


def decoded(entries: list[Entry], reporter: FailureReporter) -> list[LogRow]:
    """The rows of entries; a malformed entry (never written by `encode`) is counted."""
    rows = []
    for entry in entries:
        try:
            rows.append(decode(entry.data))
        except (ValueError, TypeError, KeyError) as exc:
            reporter.refused(exc)
    return rows


def drain_stream(
    stream: Stream, token: str, *, batch_size: int, lease_ms: int, reporter: FailureReporter
) -> bool:
    """Store the stream's lines batch by batch while we hold its lease; True if we held it
    and emptied it. Raises Redis and database connection errors (the batch stays)."""
    while True:
        if not stream.hold(token, lease_ms):
            return False
        entries = stream.read(batch_size)
        if not entries:
            return True
        store_entries(entries, reporter)
        stream.ack([entry.entry_id for entry in entries])
        reporter.succeeded()


def registered_streams(client, namespace: Namespace) -> Iterator[str]:
    for name in client.sscan_iter(namespace.registry, count=100):
        yield name.decode()


def drain_orphans(
    *,
    url: str,
    namespace: Namespace,
    timeout: float,
    batch_size: int,
    lease_ms: int,
    reporter: FailureReporter,
    budget: float,
) -> int:
    """Drain every registered stream whose lease is free (its owner is gone), for at most
    `budget` seconds; retire those left empty. Return how many streams were drained."""
    client = connect(url, timeout)
    token = new_token()
    deadline = time.monotonic() + budget
    drained = 0
    try:
        for name in list(registered_streams(client, namespace)):
            if time.monotonic() >= deadline:
                break
            stream = Stream(client, namespace, name)
            try:
                if drain_stream(
                    stream, token, batch_size=batch_size, lease_ms=lease_ms, reporter=reporter
                ):
                    drained += 1
                    stream.retire(token)
            finally:
                stream.release(token)
    finally:
        client.close()
    return drained


def pending_streams(url: str, namespace: Namespace, timeout: float) -> int:
    """How many streams are registered (may hold lines)."""
    client = connect(url, timeout)
    try:
        return client.scard(namespace.registry)
    finally:
        client.close()
