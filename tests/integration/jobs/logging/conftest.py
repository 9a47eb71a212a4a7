"""Every job log test starts with a new backend (no failure burst or repeat count carried
over). The fixtures themselves are shared: tests/support/fixtures.py."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _fresh_backend_per_test(fresh_log_backend):
    yield
