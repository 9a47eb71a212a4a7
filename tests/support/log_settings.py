"""Setting `JOB_LOGS` in a test: only the keys and options named, the rest as configured."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.test import override_settings


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
