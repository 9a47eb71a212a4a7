"""Fixtures for the hostile-content tests: reused from the log, API and pipeline suites."""

from __future__ import annotations

from tests.integration.api.conftest import member, session_cookie  # noqa: F401  (fixtures)
from tests.integration.jobs.logging.conftest import (  # noqa: F401  (fixtures)
    fresh_log_backend,
    use_backend,
)
from tests.integration.ml.conftest import broker, many_images  # noqa: F401  (fixtures)
