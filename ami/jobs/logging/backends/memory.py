"""`memory`: rows kept in a list in this process. For unit tests and for tests that do not
use the `logs` database; not shared between processes."""

from __future__ import annotations

import threading

from ami.jobs.logging.backends.base import JobLogBackend
from ami.jobs.logging.budget_ledger import LocalLedger
from ami.jobs.logging.rows import LogRow


class MemoryBackend(JobLogBackend):
    name = "memory"
    blocking = False
    budget_ledger = LocalLedger  # the budget counted in this process, like the rows

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.rows: list[LogRow] = []
        self._rows_lock = threading.Lock()

    def write_rows(self, rows: list[LogRow]) -> None:
        with self._rows_lock:
            self.rows.extend(rows)

    def lines(self, job_id: int) -> list[LogRow]:
        return [row for row in self.rows if row.job_id == job_id]
