"""Job log rows for tests: lines added straight to the table, cursors, stored messages, and a
writer process SIGKILLed mid-stream."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys

import pytest

from ami.jobs.models import Job, JobLog

# Tests that write through the `logs` alias: its connection must see committed job rows.
LOGS_DB = pytest.mark.django_db(transaction=True, databases="__all__")
LEVELS = [logging.DEBUG, logging.INFO, logging.INFO, logging.WARNING, logging.ERROR]


def add_lines(job: Job, count: int, *, start: int = 0) -> list[JobLog]:
    """`count` lines `line N` cycling through DEBUG..ERROR; returns them in (txid, id) order."""
    created = JobLog.objects.bulk_create(
        JobLog(job=job, level=LEVELS[i % len(LEVELS)], message=f"line {i}", context={"i": i})
        for i in range(start, start + count)
    )
    return list(JobLog.objects.filter(id__in=[line.id for line in created]).order_by("txid", "id"))


def cursor_of(line: JobLog) -> str:
    """The cursor string the API gives for `line`."""
    return f"{line.txid}.{line.id}"


def stored_messages(job_id: int) -> list[str]:
    """The job's stored messages in id order."""
    return list(
        JobLog.objects.filter(job_id=job_id).order_by("id").values_list("message", flat=True)
    )


# Logs `line N` with context {"seq": N} until killed, printing N once each call returned.
_WRITER = """
import sys, django
django.setup()
from ami.jobs.logging import job_logger
logger = job_logger(int(sys.argv[1]))
for seq in range(100_000):
    logger.info("line %d", seq, extra={"seq": seq})
    print(seq, flush=True)  # the call returned
"""


def sigkilled_writer(job_id: int, env: dict[str, str], after: int = 300) -> tuple[list[int], int]:
    """Run a writer process for the job, SIGKILL it once `after` calls returned; return the
    seqs whose call returned (those printed before the kill landed too) and its exit code."""
    worker = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(job_id)], env=env, stdout=subprocess.PIPE, text=True
    )
    returned = []
    for line in worker.stdout:
        returned.append(int(line))
        if len(returned) == after:
            os.kill(worker.pid, signal.SIGKILL)
            break
    returned += [int(line) for line in worker.stdout]  # printed before the kill landed
    worker.wait(10)
    return returned, worker.returncode
