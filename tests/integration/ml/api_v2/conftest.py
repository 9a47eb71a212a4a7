"""Fixtures of the protocol's contract tests."""

from __future__ import annotations

import pytest

from tests.integration.api.conftest import client_for, member, member_client  # noqa: F401
from tests.integration.ml.conftest import broker, many_images, service_client  # noqa: F401


@pytest.fixture
def service():
    """A client of the protocol, as a processing service with its own key."""
    return service_client("contract service")
