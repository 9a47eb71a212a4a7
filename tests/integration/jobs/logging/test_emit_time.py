"""A line's `created_at` is when it was logged, not when a backend got round to writing it."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import pytest

from ami.jobs.logging.handler import build_backend, flush_job_logs
from ami.jobs.logging.rows import LogRow
from ami.jobs.models import JobLog
from tests.support.logs import LOGS_DB

pytestmark = LOGS_DB

LOGGED_AT = datetime(2021, 3, 4, 5, 6, 7, 890_000, tzinfo=UTC)


@pytest.mark.parametrize("name", ["sync", "buffered", "redis", "memory", "legacy_json"])
def test_every_backend_writes_the_rows_emit_time(name, job):
    backend = build_backend(name, dual_write=False)
    try:
        backend.write_rows([LogRow(job.pk, logging.INFO, "stamped", created_at=LOGGED_AT)])
    finally:
        backend.close(1)
    if name == "memory":
        assert [row.created_at for row in backend.rows] == [LOGGED_AT]
    elif name == "legacy_json":
        job.refresh_from_db(fields=["legacy_logs"])
        assert job.legacy_logs["stdout"] == ["[2021-03-04 05:06:07] INFO stamped"]
    else:
        assert list(JobLog.objects.values_list("created_at", flat=True)) == [LOGGED_AT]


def test_a_row_is_stamped_when_it_is_made_in_utc():
    before = datetime.now(UTC)
    row = LogRow(1, logging.INFO, "now")
    assert before <= row.created_at <= datetime.now(UTC)
    assert row.created_at.tzinfo is UTC


def test_a_buffered_line_keeps_its_emit_time_not_its_flush_time(job, use_backend):
    use_backend("buffered", interval=60.0)
    job.logger.info("queued")
    logged_by = datetime.now(UTC)
    time.sleep(0.3)  # not synchronisation: the gap between the emit and the flush's COPY
    assert flush_job_logs(10)
    (created_at,) = JobLog.objects.filter(job=job).values_list("created_at", flat=True)
    assert created_at <= logged_by
