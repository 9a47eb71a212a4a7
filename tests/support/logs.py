"""Job log rows for tests: lines added straight to the table, cursors, stored messages."""

from __future__ import annotations

import logging

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
