"""The Celery app as the load test runs it: the real app, plus the ledger and task timing.

`celery -A ami_lab.loadtest.worker_app worker ...` with `AMI_LOADTEST_LEDGER=<dir>`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from celery.signals import task_postrun, task_prerun

from ami.celery import app
from ami_lab.loadtest.ledger import HOSTILE_EVERY_ENV, LEDGER_ENV, install

__all__ = ["app"]

_ledger = install(Path(os.environ[LEDGER_ENV]), int(os.environ.get(HOSTILE_EVERY_ENV, "0")))
_started: dict[str, float] = {}


@task_prerun.connect
def _task_started(task_id: str, **_: object) -> None:
    _started[task_id] = time.monotonic()


@task_postrun.connect
def _task_finished(task_id: str, state: str | None = None, **_: object) -> None:
    started = _started.pop(task_id, None)
    if started is not None:
        _ledger.record_task(task_id, time.monotonic() - started, state or "UNKNOWN")
