"""Fixtures for the job log tests: a fresh backend per test, chosen by name."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.conf import settings
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


def job_logs_with(**values: Any) -> dict[str, Any]:
    """The current `JOB_LOGS` with `values` on top: UPPER-CASE keywords are its keys, the
    others backend OPTIONS (`job_logs_with(BACKEND="buffered", interval=60.0)`)."""
    current = dict(settings.JOB_LOGS)
    options = dict(current.get("OPTIONS") or {})
    for key, value in values.items():
        if key.isupper():
            current[key] = value
        else:
            options[key] = value
    return {**current, "OPTIONS": options}


@contextmanager
def overriding_job_logs() -> Iterator[Callable[..., None]]:
    """Yield `configure(**values)`, which sets `JOB_LOGS` (see `job_logs_with`) until exit."""
    overrides = []

    def configure(**values: Any) -> None:
        override = override_settings(JOB_LOGS=job_logs_with(**values))
        override.enable()
        overrides.append(override)

    try:
        yield configure
    finally:
        for override in reversed(overrides):
            override.disable()


@pytest.fixture
def job_log_settings():
    """`job_log_settings(BACKEND="buffered", interval=60.0)` sets `JOB_LOGS` for the rest of
    the test (see `job_logs_with`); the backend is rebuilt on its next use."""
    with overriding_job_logs() as configure:
        yield configure


@pytest.fixture
def use_backend():
    """`use_backend("buffered", interval=60.0)` switches the backend (and sets its options)
    for the rest of the test, and returns it."""
    with overriding_job_logs() as configure:

        def switch(name: str, *, dual_write: bool = False, **options: Any):
            configure(BACKEND=name, DUAL_WRITE=dual_write, **options)
            return get_backend()

        yield switch


def stored_messages(job_id: int) -> list[str]:
    return list(
        JobLog.objects.filter(job_id=job_id).order_by("id").values_list("message", flat=True)
    )
