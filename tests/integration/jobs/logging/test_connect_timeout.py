"""A database host that never answers: a sync line returns within the connect timeout, lost
and counted, not raised (without `connect_timeout` it blocked for minutes)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
from django.conf import settings

CONNECT_TIMEOUT = 2  # seconds; libpq's minimum
SCRIPT = """
import time
import django
django.setup()
from ami.jobs.logging import job_logger
from ami.jobs.logging.handler import get_backend
began = time.monotonic()
job_logger(1).info("to a database that never answers")
print(round(time.monotonic() - began, 2), get_backend().reporter.lost_lines)
"""


@pytest.fixture
def blackhole_port() -> Iterator[int]:
    """A loopback port that listens but never accepts: the handshake completes, no reply."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(0)
        yield sock.getsockname()[1]


@pytest.mark.parametrize("alias", ["default", "logs"])
def test_both_aliases_have_the_connect_timeout(alias):
    assert settings.DATABASES[alias]["OPTIONS"]["connect_timeout"] == settings.DB_CONNECT_TIMEOUT


def test_a_sync_line_to_an_unanswering_database_returns_within_the_bound(blackhole_port):
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{blackhole_port}/ami",
        "AMI_DB_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT),
        "JOB_LOG_BACKEND": "sync",
        "AMI_LOG_LEVEL": "WARNING",
    }
    try:
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        pytest.fail("one log line blocked for 30 s on a database that never answers")
    assert done.returncode == 0, done.stderr
    seconds, lost = done.stdout.split()
    # Two connection attempts, each not retried: the log budget's reservation (which then
    # backs off, docs/logging.md "Per-job budget") and the write; plus scheduling slack.
    assert float(seconds) < 2 * CONNECT_TIMEOUT + 1.5
    assert lost == "1"
    assert "write failed" in done.stderr
