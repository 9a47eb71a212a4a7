"""A worker SIGKILLed mid-stream: every `sync` line whose call returned is stored."""

from __future__ import annotations

import signal

from ami.jobs.models import JobLog
from tests.support.logs import LOGS_DB, sigkilled_writer

pytestmark = LOGS_DB


def test_sigkill_loses_no_line_whose_call_returned(job, subprocess_env):
    env = {**subprocess_env, "JOB_LOG_BACKEND": "sync", "AMI_LOG_LEVEL": "WARNING"}
    returned, returncode = sigkilled_writer(job.pk, env)
    stored = set(JobLog.objects.filter(job=job).values_list("context__seq", flat=True))
    assert returncode == -signal.SIGKILL
    assert set(returned) <= stored
    assert len(stored) - len(returned) <= 1  # at most the line being written at the kill
