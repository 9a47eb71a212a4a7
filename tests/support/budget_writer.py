"""One writer process for the log budget tests: `python -m tests.support.budget_writer --job 7
--lines 300 --tag 0 --warn-every 10` (backend and budget from the environment: JOB_LOG_BACKEND,
AMI_JOB_LOG_MAX_LINES, ...).

Prints "ready" once set up, waits for a line on stdin, logs its lines through the real
`job_logger` (every `warn_every`-th a WARNING), closes the backend as a worker process does
at shutdown (flush, the budget's last lines, its elided count), and prints one JSON object:
the budget size (`line_bytes`) of each line below WARNING, by sequence number.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

import django


def message(tag: int, seq: int) -> str:
    return f"writer {tag} line {seq}: saved results for image {seq}"


def main() -> int:
    parser = argparse.ArgumentParser()
    for name in ("--job", "--lines", "--tag", "--warn-every"):
        parser.add_argument(name, type=int, required=True)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ami.settings")
    django.setup()
    from ami.jobs.logging import JOB_LOGGER_NAME, job_logger
    from ami.jobs.logging.budget import line_bytes
    from ami.jobs.logging.handler import reset_backend
    from ami.jobs.logging.process import HOSTNAME, current_pid
    from ami.jobs.logging.rows import LogRow

    logging.getLogger(JOB_LOGGER_NAME).propagate = False
    logger = job_logger(args.job)
    print("ready", flush=True)
    sys.stdin.readline()
    sizes = {}
    for seq in range(args.lines):
        context = {"writer": args.tag, "seq": seq}
        if seq % args.warn_every == 0:
            logger.warning(message(args.tag, seq), extra=context)
            continue
        logger.info(message(args.tag, seq), extra=context)
        stored = {**context, "host": HOSTNAME, "pid": current_pid()}  # as the handler adds
        sizes[seq] = line_bytes(LogRow(args.job, logging.INFO, message(args.tag, seq), stored))
    reset_backend()  # what worker_process_shutdown does: flush, then close
    print(json.dumps({"tag": args.tag, "sizes": sizes}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
