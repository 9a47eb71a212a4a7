"""`in_transaction`: INSERT on the caller's own `default` connection, inside its transaction.

NOT FOR PRODUCTION. This is what the upstream proposal's plain `JobLog.objects.create()` in
`emit` does, kept only so the load test can show its failure signatures side by side: a
rolled-back transaction erases the line that explains it, a failed write aborts the caller's
transaction, a broken caller connection breaks logging, and inside `select_for_update()` the
line commits only when the caller does.
"""

from __future__ import annotations

from django.db import connections

from ami.jobs.logging.backends.base import JobLogBackend
from ami.jobs.logging.backends.sync import INSERT_SQL, row_params, with_partition_keys
from ami.jobs.logging.rows import LogRow


class InTransactionBackend(JobLogBackend):
    name = "in_transaction"

    def write_rows(self, rows: list[LogRow]) -> None:
        conn = connections["default"]

        def write(keys: dict) -> None:
            with conn.cursor() as cursor:
                for row in rows:
                    cursor.execute(INSERT_SQL, list(row_params(row, keys)))

        with_partition_keys(conn, rows, write)

    def release_thread_resources(self) -> None:
        connections["default"].close()
