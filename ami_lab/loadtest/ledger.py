"""Accounting that does not trust the system under test.

Every job log line emitted in a worker gets a unique id, appended to its message (so it is
found wherever the line is stored: a JobLog row or the legacy JSON column) and written to a
per-process ledger file *before* the line reaches the JobLog handler. Comparing the ledger
with what was stored counts lost and duplicated lines exactly. Ledger writes go to the
kernel at once, so they survive a SIGKILL of the worker.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ami.jobs.logging import JOB_LOGGER_NAME

LEDGER_ENV = "AMI_LOADTEST_LEDGER"
HOSTILE_EVERY_ENV = "AMI_LOADTEST_HOSTILE_EVERY"
LINES_PER_RESULT_ENV = "AMI_LOADTEST_LINES_PER_RESULT"
LINE_ID_KEY = "loadtest_line_id"
HOSTILE_KEY = "loadtest_hostile"
# Content that breaks naive log writers (PostgreSQL rejects NUL; UTF-8 encoders reject lone
# surrogates). No "%": the message is %-formatted with the caller's arguments later.
# The full corpus is tests/support/hostile.py; this is the part a log line can carry.
HOSTILE_TEXTS = (
    "bad \x00 name",
    "bad \udc80 name",
    "bad \ud800 name",
    "ctl \x01\x1b[31m\x7f",
    "rtl \u202egpj.exe zw\u200b\ufeff",
    "",
    " \t\n",
)
LINE_ID_PATTERN = re.compile(r" lt=([0-9a-f]{32})")


class LedgerFilter(logging.Filter):
    """Tag each job log record with a unique id and record the id in this process's ledger."""

    def __init__(self, directory: Path, hostile_every: int = 0) -> None:
        """`hostile_every` N > 0: every N-th line also carries hostile content (see above)."""
        super().__init__()
        self.directory = directory
        self.hostile_every = hostile_every
        self._files: dict[tuple[int, str], TextIO] = {}
        self._count = 0

    def _file(self, name: str) -> TextIO:
        key = (os.getpid(), name)  # a forked child must not write into its parent's file
        if key not in self._files:
            self._files[key] = open(  # noqa: SIM115 - kept open for the process lifetime
                self.directory / f"{name}-{key[0]}.txt", "a", buffering=1
            )
        return self._files[key]

    def filter(self, record: logging.LogRecord) -> bool:
        context = getattr(record, "job_context", None)
        if isinstance(context, dict):
            line_id = uuid.uuid4().hex
            context[LINE_ID_KEY] = line_id
            hostile = self._hostile(context)
            record.msg = f"{record.msg}{hostile} lt={line_id}"
            mark = " hostile" if HOSTILE_KEY in context else ""
            job = getattr(record, "job_id", None)
            job_mark = f" job={job}" if isinstance(job, int) else ""
            self._file("lines").write(f"{line_id} {time.time():.3f}{job_mark}{mark}\n")
        return True

    def _hostile(self, context: dict) -> str:
        """Hostile text for this line's message (also put in its context), or ""."""
        self._count += 1
        if not self.hostile_every or self._count % self.hostile_every:
            return ""
        text = HOSTILE_TEXTS[(self._count // self.hostile_every) % len(HOSTILE_TEXTS)]
        context[HOSTILE_KEY] = text
        return f" {text}"

    def record_task(self, task_id: str, seconds: float, outcome: str) -> None:
        self._file("tasks").write(f"{task_id} {seconds:.6f} {outcome} {time.time():.3f}\n")


def install(directory: Path, hostile_every: int = 0) -> LedgerFilter:
    """Attach the ledger to the job logger of this process."""
    directory.mkdir(parents=True, exist_ok=True)
    ledger = LedgerFilter(directory, hostile_every)
    logging.getLogger(JOB_LOGGER_NAME).addFilter(ledger)
    return ledger


@dataclass(frozen=True)
class Emitted:
    line_id: str
    at: float  # time.time() of the emit
    pid: int
    hostile: bool = False  # carried hostile content (--hostile-lines)
    job_id: int | None = None  # the job the line was logged for (None: not recorded)


def parse_ledger_row(row: str, pid: int) -> Emitted | None:
    """One ledger row: `<line id> <emit time> [job=<job id>] [hostile]` (None if malformed)."""
    parts = row.split()
    if len(parts) < 2:
        return None
    job_id = None
    for mark in parts[2:]:
        if mark.startswith("job="):
            job_id = int(mark[4:])
    return Emitted(parts[0], float(parts[1]), pid, "hostile" in parts[2:], job_id)


def emitted_lines(directory: Path) -> list[Emitted]:
    """Every line the workers emitted, as recorded in the ledgers."""
    lines = []
    for path in directory.glob("lines-*.txt"):
        pid = int(path.stem.split("-")[1])
        for row in path.read_text().splitlines():
            line = parse_ledger_row(row, pid)
            if line is not None:
                lines.append(line)
    return lines


def emitted_ids(directory: Path) -> Counter:
    """Every line id the workers emitted (a Counter: an id emitted twice is a ledger bug)."""
    return Counter(line.line_id for line in emitted_lines(directory))


def stored_ids(messages: Iterable[str]) -> Counter:
    """Line ids found in stored messages (JobLog rows or legacy JSON entries)."""
    ids: Counter = Counter()
    for message in messages:
        ids.update(LINE_ID_PATTERN.findall(message))
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
