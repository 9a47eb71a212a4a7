"""`buffered`: a bounded in-process queue, written by a background thread with COPY.

`emit` only appends to the queue. Lines are written within `interval` seconds, in batches of
up to `batch_size` (the base's queue options), and on `flush()` (Celery task end, worker
process shutdown, interpreter exit). A full queue counts what it could not take and writes
the count as a marker line. Lines still queued when the process is SIGKILLed are lost.
"""

from __future__ import annotations

from typing import Any

from ami.jobs.logging.backends.background import BackgroundWriter
from ami.jobs.logging.backends.base import JobLogBackend
from ami.jobs.logging.backends.sync import (
    COLUMNS,
    TABLE,
    PartitionKeys,
    insert_many,
    insert_rows_once,
    row_params,
    with_partition_keys,
)
from ami.jobs.logging.connection import call_with_reconnect, discard, log_connection
from ami.jobs.logging.rows import LogRow

COPY_SQL = f"COPY {TABLE} ({COLUMNS}) FROM STDIN"


def copy_rows(rows: list[LogRow]) -> None:
    """COPY rows in one statement (one commit) on this thread's log connection.

    COPY cannot skip rows already stored, so when the connection dies under it (the commit
    may have happened, only its reply lost) the retry is an INSERT that skips stored keys.
    """
    conn = log_connection()

    def copy(keys: PartitionKeys) -> None:
        with conn.connection.cursor() as cursor, cursor.copy(COPY_SQL) as copy:
            for row in rows:
                copy.write_row(row_params(row, keys))

    def copy_all() -> None:
        conn.ensure_connection()
        with_partition_keys(conn, rows, copy)

    call_with_reconnect(conn, copy_all, retry=lambda: insert_many(conn, rows))


def close_thread_connection() -> None:
    discard(log_connection())


class BufferedBackend(JobLogBackend):
    name = "buffered"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.writer = BackgroundWriter(
            self.write_rows,
            self.reporter,
            retry_write=insert_rows_once,
            name="ami-joblog-flusher",
            on_thread_exit=close_thread_connection,
            **self.queue_options,
        )

    def write_rows(self, rows: list[LogRow]) -> None:
        copy_rows(rows)

    def submit(self, rows: list[LogRow]) -> None:
        self.writer.put(rows)

    def flush_writes(self, timeout: float | None) -> bool:
        return self.writer.flush(timeout)

    def close(self, timeout: float | None = None) -> bool:
        flushed = super().close(timeout)
        self.writer.stop(timeout)
        return flushed

    def after_fork(self) -> None:
        self.writer.reporter = self.reporter
