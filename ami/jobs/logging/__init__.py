"""The job log: `job_logger(job_id)` gives a standard logger interface for one job.

Lines go to the `ami.jobs.job` logger with the job id attached (no logger per job is
created, so long-lived processes keep none), and from there to the process's normal
logging and to the JobLog handler.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

JOB_LOGGER_NAME = "ami.jobs.job"
# Context key of the line that says how a job ended (its value: the final status). A live
# tail ends once it has passed this line, so a reader never misses the job's last word.
FINAL_LINE_KEY = "final_status"


class JobLoggerAdapter(logging.LoggerAdapter):
    """Attach `job_id`, and keep the caller's `extra` as the line's context."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        context = dict(kwargs.get("extra") or {})
        kwargs["extra"] = {"job_id": self.extra["job_id"], "job_context": context}
        return msg, kwargs


def job_logger(job_id: int) -> JobLoggerAdapter:
    """Return the logger for one job: `job_logger(7).info("saved %d", n, extra={...})`."""
    return JobLoggerAdapter(logging.getLogger(JOB_LOGGER_NAME), {"job_id": job_id})
