"""Fixtures for the job log tests: a fresh backend per test, chosen by name."""

from __future__ import annotations

import pytest
from django.db import connections
from django.test import override_settings

from ami.jobs.logging.handler import get_backend, reset_backend
from ami.jobs.models import JobLog

LOGS_DB = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture(autouse=True)
def fresh_log_backend():
    """Each test starts with a new backend (no failure burst or repeat count carried over)."""
    reset_backend()
    yield
    reset_backend()
    connections["logs"].close()


@pytest.fixture
def use_backend():
    """`use_backend("buffered")` switches JOB_LOG_BACKEND for the rest of the test."""
    overrides = []

    def switch(name: str, *, dual_write: bool = False):
        override = override_settings(JOB_LOG_BACKEND=name, JOB_LOG_DUAL_WRITE=dual_write)
        override.enable()
        overrides.append(override)
        return get_backend()

    yield switch
    for override in reversed(overrides):
        override.disable()


def stored_messages(job_id: int) -> list[str]:
    return list(
        JobLog.objects.filter(job_id=job_id).order_by("id").values_list("message", flat=True)
    )
