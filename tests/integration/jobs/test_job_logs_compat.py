"""`job.logs`: the legacy {stdout, stderr} shape, from JobLog rows or the old JSON column."""

from __future__ import annotations

import logging

import psycopg
import pytest

from ami.jobs.models import JobLog
from ami.jobs.models.job import LEGACY_LOGS_LIMIT
from tests.support.logs import add_lines

pytestmark = pytest.mark.django_db


def test_logs_come_from_the_newest_rows_newest_first(job):
    add_lines(job, 7)
    logs = job.logs
    assert [line.rsplit(" ", 1)[1] for line in logs["stdout"]] == [
        "6",
        "5",
        "4",
        "3",
        "2",
        "1",
        "0",
    ]
    assert logs["stdout"][0].startswith("[") and "] INFO line 6" in logs["stdout"][0]
    assert [line.rsplit(" ", 1)[1] for line in logs["stderr"]] == ["4"]
    assert "] ERROR line 4" in logs["stderr"][0]


def test_stderr_holds_error_and_above(job):
    for level in (logging.WARNING, logging.ERROR, logging.CRITICAL, 45):
        JobLog.objects.create(job=job, level=level, message=f"at {level}")
    assert [line.split("] ", 1)[1] for line in job.logs["stderr"]] == [
        "Level 45 at 45",
        "CRITICAL at 50",
        "ERROR at 40",
    ]


def test_logs_are_capped_and_limit_is_honoured(job):
    add_lines(job, LEGACY_LOGS_LIMIT + 5)
    assert len(job.logs["stdout"]) == LEGACY_LOGS_LIMIT
    assert job.logs["stdout"][0].endswith(f"line {LEGACY_LOGS_LIMIT + 4}")
    recent = job.recent_logs(10)
    assert len(recent["stdout"]) == 10
    assert len(recent["stderr"]) == 2  # the ERROR lines among those ten
    assert job.recent_logs(0) == {"stdout": [], "stderr": []}


def test_jobs_without_rows_fall_back_to_the_legacy_column(job):
    job.legacy_logs = {
        "stdout": [f"[2024-01-01 00:00:0{i}] INFO old {i}" for i in range(5, 0, -1)],
        "stderr": ["[2024-01-01 00:00:03] ERROR old 3"],
    }
    job.save(update_fields=["legacy_logs"])
    assert job.logs == job.legacy_logs
    assert job.recent_logs(2)["stdout"] == job.legacy_logs["stdout"][:2]
    add_lines(job, 1)
    assert job.logs["stdout"][0].endswith("line 0")  # rows, once there are any, win


def test_an_empty_legacy_column_gives_the_empty_shape(job):
    job.legacy_logs = {}
    assert job.logs == {"stdout": [], "stderr": []}


def test_logs_follow_the_order_readers_use_not_id_order(job, test_database_url):
    """A line of a later transaction (higher txid) is newer even with a smaller id."""
    insert = (
        "INSERT INTO jobs_joblog (job_id, txid, level, message, context, job_partition_key) "
        "SELECT id, %s, 20, %s, '{}', log_partition_key FROM jobs_job WHERE id = %s"
    )
    with psycopg.connect(test_database_url, autocommit=True) as conn:
        conn.execute(insert, [900, "committed last", job.pk])  # smaller id, later transaction
        conn.execute(insert, [100, "committed first", job.pk])
    assert [line.split("INFO ")[1] for line in job.logs["stdout"]] == [
        "committed last",
        "committed first",
    ]
