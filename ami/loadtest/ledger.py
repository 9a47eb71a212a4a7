"""Accounting that does not trust the system under test.

Every job log line emitted in a worker gets a unique id, written to a per-process ledger
file *before* the line reaches the JobLog handler. Comparing the ledger with the JobLog
rows counts lost and duplicated lines exactly. Ledger writes go to the kernel at once, so
they survive a SIGKILL of the worker.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import TextIO

from ami.jobs.logging import JOB_LOGGER_NAME

LEDGER_ENV = "AMI_LOADTEST_LEDGER"
LINE_ID_KEY = "loadtest_line_id"


class LedgerFilter(logging.Filter):
    """Tag each job log record with a unique id and record the id in this process's ledger."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory
        self._files: dict[tuple[int, str], TextIO] = {}

    def _file(self, name: str) -> TextIO:
        key = (os.getpid(), name)  # a forked child must not write into its parent's file
        if key not in self._files:
            self._files[key] = open(  # noqa: SIM115 - kept open for the process lifetime
                self.directory / f"{name}-{key[0]}.txt", "a", buffering=1
            )
        return self._files[key]

    def filter(self, record: logging.LogRecord) -> bool:
        line_id = uuid.uuid4().hex
        context = getattr(record, "job_context", None)
        if isinstance(context, dict):
            context[LINE_ID_KEY] = line_id
            self._file("lines").write(f"{line_id}\n")
        return True

    def record_task(self, task_id: str, seconds: float, outcome: str) -> None:
        self._file("tasks").write(f"{task_id} {seconds:.6f} {outcome} {time.time():.3f}\n")


def install(directory: Path) -> LedgerFilter:
    """Attach the ledger to the job logger of this process."""
    directory.mkdir(parents=True, exist_ok=True)
    ledger = LedgerFilter(directory)
    logging.getLogger(JOB_LOGGER_NAME).addFilter(ledger)
    return ledger


def emitted_ids(directory: Path) -> Counter:
    """Every line id the workers emitted (a Counter: an id emitted twice is a ledger bug)."""
    ids: Counter = Counter()
    for path in directory.glob("lines-*.txt"):
        ids.update(line.strip() for line in path.read_text().splitlines() if line.strip())
    return ids


def task_records(directory: Path) -> list[tuple[str, float, str]]:
    """(task id, seconds, outcome) for every finished task run."""
    records = []
    for path in directory.glob("tasks-*.txt"):
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3:
                records.append((parts[0], float(parts[1]), parts[2]))
    return records
