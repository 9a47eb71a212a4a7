"""A worker SIGKILLed mid-stream: every `sync` line whose call returned is stored."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from ami.jobs.models import JobLog
from tests.support.logs import LOGS_DB

pytestmark = LOGS_DB

SCRIPT = """
import sys, django
django.setup()
from ami.jobs.logging import job_logger
logger = job_logger(int(sys.argv[1]))
for seq in range(100_000):
    logger.info("line %d", seq, extra={"seq": seq})
    print(seq, flush=True)  # the call returned
"""


def test_sigkill_loses_no_line_whose_call_returned(job, subprocess_env):
    env = {**subprocess_env, "JOB_LOG_BACKEND": "sync", "AMI_LOG_LEVEL": "WARNING"}
    worker = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(job.pk)], env=env, stdout=subprocess.PIPE, text=True
    )
    returned = []
    for line in worker.stdout:
        returned.append(int(line))
        if len(returned) == 300:
            os.kill(worker.pid, signal.SIGKILL)
            break
    returned += [int(line) for line in worker.stdout]  # printed before the kill landed
    worker.wait(10)
    stored = set(JobLog.objects.filter(job=job).values_list("context__seq", flat=True))
    assert worker.returncode == -signal.SIGKILL
    assert set(returned) <= stored
    assert len(stored) - len(returned) <= 1  # at most the line being written at the kill
