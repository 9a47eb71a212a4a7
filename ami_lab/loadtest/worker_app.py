"""The Celery app as the load test runs it: the real app, plus the ledger and task timing.

`celery -A ami_lab.loadtest.worker_app worker ...` with `AMI_LOADTEST_LEDGER=<dir>`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from celery.signals import task_postrun, task_prerun

from ami.celery import app
from ami.jobs.logging import job_logger
from ami_lab.loadtest.ledger import HOSTILE_EVERY_ENV, LEDGER_ENV, LINES_PER_RESULT_ENV, install

__all__ = ["app"]

_ledger = install(Path(os.environ[LEDGER_ENV]), int(os.environ.get(HOSTILE_EVERY_ENV, "0")))
_started: dict[str, float] = {}
_lines_per_result = int(os.environ.get(LINES_PER_RESULT_ENV, "0"))


@task_prerun.connect
def _task_started(task_id: str, task=None, args=None, **_: object) -> None:
    _started[task_id] = time.monotonic()
    if _lines_per_result and task is not None and args:
        _log_per_result(task.name, args)


def _log_per_result(task_name: str, args: list) -> None:
    """Log per image, as a pipeline that logs per image does, inside the pool process."""
    if task_name.endswith(".save_results"):
        results = args[1]
    elif task_name.endswith(".process_nats_pipeline_result"):
        results = [args[1]]
    else:
        return
    log = job_logger(args[0])
    for result in results:
        image_id = result.get("image_id")
        for _ in range(_lines_per_result):
            log.info("Received the result of image %s", image_id, extra={"image_id": image_id})


@task_postrun.connect
def _task_finished(task_id: str, state: str | None = None, **_: object) -> None:
    started = _started.pop(task_id, None)
    if started is not None:
        _ledger.record_task(task_id, time.monotonic() - started, state or "UNKNOWN")
