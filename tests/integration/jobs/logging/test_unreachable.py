"""A database that cannot be reached: the caller sees nothing, stderr gets one line per burst."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = """
import django
django.setup()
from ami.jobs.logging import job_logger
from ami.jobs.logging.handler import flush_job_logs, get_backend
for i in range(50):
    job_logger(1).info("line %d", i)
flush_job_logs(10)
print("lost", get_backend().reporter.lost_lines)
"""


@pytest.mark.parametrize("backend", ["sync", "buffered"])
def test_unreachable_database_raises_nothing_and_reports_once(backend):
    env = {
        **os.environ,
        "DATABASE_URL": "postgres://postgres@127.0.0.1:9/unreachable",
        "JOB_LOG_BACKEND": backend,
        "AMI_LOG_LEVEL": "WARNING",
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "lost 50"
    reports = [line for line in done.stderr.splitlines() if "write failed" in line]
    assert len(reports) == 1
    assert "OperationalError" in reports[0]
