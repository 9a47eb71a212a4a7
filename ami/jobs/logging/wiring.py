"""Attach the JobLog handler to the job logger and flush it when work ends.

Flush points: Celery task end (`task_postrun`), worker process and worker shutdown, and
interpreter exit. Called once from the jobs app's `ready()`.
"""

from __future__ import annotations

import atexit
import logging
from typing import Any

from celery import signals
from django.core.exceptions import ImproperlyConfigured

from ami.jobs.logging import JOB_LOGGER_NAME
from ami.jobs.logging.config import job_logs_setting
from ami.jobs.logging.handler import (
    JobLogHandler,
    configuration_problems,
    flush_job_logs,
    flush_timeout,
    reset_backend,
)
from ami.jobs.logging.process import set_current_task_id


def install() -> None:
    """Attach the handler (once), set the job logger's level, and hook the flush points."""
    # A mistyped backend, an option it does not take or an out-of-range value fails at
    # startup (also in Celery workers, which run no system checks), not at the first line.
    problems = configuration_problems()
    if problems:
        raise ImproperlyConfigured("; ".join(problems))
    logger = logging.getLogger(JOB_LOGGER_NAME)
    if not any(isinstance(handler, JobLogHandler) for handler in logger.handlers):
        logger.addHandler(JobLogHandler())
    # Job lines are product data: stored at their own level whatever the console's level is.
    level = job_logs_setting()["LEVEL"]
    logger.setLevel(level.upper() if isinstance(level, str) else level)
    signals.task_prerun.connect(_note_task, weak=False, dispatch_uid="ami-joblog-task-start")
    signals.task_postrun.connect(_flush_after_task, weak=False, dispatch_uid="ami-joblog-task")
    signals.worker_process_shutdown.connect(
        _close_backend, weak=False, dispatch_uid="ami-joblog-process"
    )
    signals.worker_shutdown.connect(_close_backend, weak=False, dispatch_uid="ami-joblog-worker")
    atexit.register(_close_backend)


def _note_task(task_id: str | None = None, **_: Any) -> None:
    set_current_task_id(task_id)


def _flush_after_task(**_: Any) -> None:
    set_current_task_id(None)
    flush_job_logs(flush_timeout())


def _close_backend(**_: Any) -> None:
    reset_backend()
