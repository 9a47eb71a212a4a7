"""Waiting in tests: poll a condition with a deadline, never a bare sleep."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

WAIT_LIMIT = 60.0  # seconds any wait in these tests may take before failing
POLL_INTERVAL = 0.1  # seconds between two looks at the condition


def wait_until(
    condition: Callable[[], object],
    what: str,
    limit: float = WAIT_LIMIT,
    interval: float = POLL_INTERVAL,
) -> object:
    """Poll `condition` until it returns something truthy; fail the test after `limit`."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {limit}s waiting for {what}")
