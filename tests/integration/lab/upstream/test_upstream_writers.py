"""The upstream's log writers, kept for comparison: they store lines, and fail as upstream does."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from django.conf import settings
from django.db import transaction
from django.test import override_settings

from ami.jobs.checks import check_job_log_settings
from ami.jobs.logging.handler import build_backend, flush_job_logs, reset_backend
from ami.jobs.logging.rows import LogRow
from ami.jobs.models import JobLog
from ami_lab.upstream import IN_TRANSACTION, IN_TRANSACTION_BACKEND, backend_setting

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture
def in_transaction_backend():
    reset_backend()
    job_logs = {**settings.JOB_LOGS, "BACKEND": IN_TRANSACTION_BACKEND, "DUAL_WRITE": False}
    with override_settings(JOB_LOGS=job_logs):
        yield
    reset_backend()


def messages(job) -> list[str]:
    return list(JobLog.objects.filter(job=job).order_by("id").values_list("message", flat=True))


def test_the_mode_name_selects_the_lab_backend_and_leaves_product_names_alone():
    assert backend_setting(IN_TRANSACTION) == IN_TRANSACTION_BACKEND
    assert backend_setting("buffered") == "buffered"


def test_in_transaction_stores_lines_in_order_outside_a_transaction(job, in_transaction_backend):
    for i in range(3):
        job.logger.info("line %d", i)
    assert flush_job_logs(10)
    assert messages(job) == ["line 0", "line 1", "line 2"]


def test_in_transaction_loses_the_line_with_the_rollback(job, in_transaction_backend):
    """The failure signature the backend exists to show (not for production)."""
    with pytest.raises(RuntimeError), transaction.atomic():
        job.logger.error("explains the rollback")
        raise RuntimeError("boom")
    assert messages(job) == []


def test_in_transaction_writes_the_rows_emit_time(job):
    logged_at = datetime(2021, 3, 4, 5, 6, 7, 890_000, tzinfo=UTC)
    backend = build_backend(IN_TRANSACTION_BACKEND, dual_write=False)
    try:
        backend.write_rows([LogRow(job.pk, logging.INFO, "stamped", created_at=logged_at)])
    finally:
        backend.close(1)
    assert list(JobLog.objects.values_list("created_at", flat=True)) == [logged_at]


def test_in_transaction_takes_the_queue_options_the_load_test_sets_for_every_mode():
    job_logs = {**settings.JOB_LOGS, "BACKEND": IN_TRANSACTION_BACKEND}
    job_logs["OPTIONS"] = {"batch_size": 10, "interval": 1.0, "max_lines": 100}
    with override_settings(JOB_LOGS=job_logs):
        assert check_job_log_settings(None) == []
