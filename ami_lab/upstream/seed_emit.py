"""The upstream (seed) job log emit, reproduced faithfully. NEVER used by the product.

It exists for contrast: the benchmark measures it, and a test documents its bug. Each call
re-reads the whole JSON column (`refresh_from_db`), prepends in memory, and saves the column
back; two processes doing that at once overwrite each other's line. It runs on the caller's
connection, catches every `Exception` (including `SoftTimeLimitExceeded`), and keeps one
process-wide `logging.Logger` per job id, with a handler holding the Job.
"""

from __future__ import annotations

import logging
from datetime import datetime

from ami.jobs.logging import legacy
from ami.jobs.models import Job

seed_logger = logging.getLogger("ami.jobs.seed")


class SeedJobLogHandler(logging.Handler):
    max_log_length = legacy.MAX_LINES

    def __init__(self, job: Job, *args, **kwargs) -> None:
        self.job = job
        super().__init__(*args, **kwargs)

    def emit(self, record: logging.LogRecord) -> None:
        # Log to the current app logger
        seed_logger.log(record.levelno, self.format(record))
        try:
            self.job.refresh_from_db(fields=["legacy_logs"])  # SELECT
            timestamp = datetime.now().strftime(legacy.TIMESTAMP_FORMAT)  # local time, as upstream
            msg = f"[{timestamp}] {record.levelname} {self.format(record)}"
            logs = self.job.legacy_logs
            if msg not in logs["stdout"]:
                logs["stdout"].insert(0, msg)
            # Write a simpler copy of any errors to the errors field
            if record.levelno >= logging.ERROR and record.message not in logs["stderr"]:
                logs["stderr"].insert(0, record.message)
            if len(logs["stdout"]) > self.max_log_length:
                logs["stdout"] = logs["stdout"][: self.max_log_length]
            self.job.save(update_fields=["legacy_logs"])  # UPDATE (upstream: update_progress=False)
        except Exception as e:  # the upstream bare except, kept on purpose
            seed_logger.error(f"Failed to save logs for job #{self.job.pk}: {e}")


def seed_job_logger(job: Job) -> logging.Logger:
    """Upstream's `Job.logger`: a process-wide logger per job id, handler added once."""
    logger = logging.getLogger(f"ami.jobs.seed.{job.pk}")
    if not any(isinstance(handler, SeedJobLogHandler) for handler in logger.handlers):
        logger.addHandler(SeedJobLogHandler(job))
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger
