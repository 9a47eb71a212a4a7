"""One writer process: `python -m ami_lab.bench.logs.writer --job 7 --mode sync ...`.

Prints "ready" once set up, waits for a line on stdin, writes its lines, flushes, and prints
one JSON object: start and end (epoch seconds), every emit's latency in microseconds, and
the CPU seconds this process spent on the lines and the flush (all its threads: a backend's
writer thread is counted; the database server's work is not).
Each line's context carries `writer` and `seq`, so a test can check order and completeness.
Modes: a backend name (through the real `job.logger`), `seed` (the upstream emit),
`raw_copy` (COPY in batches, no logging machinery: the baseline), `raw_insert` (one
prepared autocommit INSERT per line with psycopg, no logging machinery: `sync`'s ceiling)
and `stream_handler` (a plain `logging.Logger` whose `StreamHandler` writes `TEXT_FORMAT`
lines to /dev/null, nothing stored: the emit-cost baseline; it also reports the bytes
those text lines took, `text_bytes`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable

import django

from ami_lab.bench.logs.writers import STREAM_HANDLER_MODE
from ami_lab.upstream import backend_setting

RAW_COPY_BATCH = 1000  # lines per COPY in the baseline
SEED_MODE, RAW_COPY_MODE, RAW_INSERT_MODE = "seed", "raw_copy", "raw_insert"
RAW_MODES = (RAW_COPY_MODE, RAW_INSERT_MODE)
NO_BACKEND_MODES = (SEED_MODE, STREAM_HANDLER_MODE, *RAW_MODES)  # JOB_LOG_BACKEND not used
# A conventional text log line: what the stored row holds but the context (time, level,
# where from, message).
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(process)d: %(message)s"
STREAM_LOGGER_NAME = "ami_lab.bench.stream"


def message(tag: int, seq: int) -> str:
    return f"writer {tag} line {seq}: saved results for image {seq}, 3 detections, 2 labels"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--job", type=int, required=True)
    parser.add_argument("--mode", required=True)
    parser.add_argument("--lines", type=int, required=True)
    parser.add_argument("--tag", type=int, required=True)
    args = parser.parse_args(argv)
    if args.mode not in NO_BACKEND_MODES:
        os.environ["JOB_LOG_BACKEND"] = backend_setting(args.mode)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ami.settings")
    django.setup()
    emit, finish = make_emitter(args.mode, args.job, args.tag, args.lines)
    print("ready", flush=True)
    sys.stdin.readline()
    latencies, start, cpu_start = [], time.time(), time.process_time()
    for seq in range(args.lines):
        began = time.perf_counter_ns()
        emit(seq)
        latencies.append((time.perf_counter_ns() - began) // 1000)
    finish()
    cpu = time.process_time() - cpu_start
    result = {"tag": args.tag, "start": start, "end": time.time(), "latencies_us": latencies}
    result["cpu_s"] = cpu
    if args.mode == STREAM_HANDLER_MODE:
        result["text_bytes"] = text_bytes(args.tag, args.lines)
    print(json.dumps(result), flush=True)
    return 0


def make_emitter(
    mode: str, job_id: int, tag: int, lines: int
) -> tuple[Callable[[int], None], Callable[[], None]]:
    """Return (emit one line by sequence number, finish) for a mode."""
    # Imported after django.setup(): these modules load models.
    from ami.jobs.logging import JOB_LOGGER_NAME, job_logger
    from ami.jobs.logging.handler import flush_job_logs
    from ami.jobs.models import Job

    # Measure the storage path, not the console: the echo is the same for every mode.
    logging.getLogger(JOB_LOGGER_NAME).propagate = False
    logging.getLogger("ami.jobs.seed").propagate = False
    if mode == RAW_COPY_MODE:
        return _raw_copy_emitter(job_id, tag, lines)
    if mode == RAW_INSERT_MODE:
        return _raw_insert_emitter(job_id, tag)
    if mode == STREAM_HANDLER_MODE:
        logger = stream_logger()
        # Same message and `extra` as the backends' emit below, through plain `logging` only.
        return (lambda seq: logger.info(message(tag, seq), extra=_extra(tag, seq))), _nothing
    if mode == SEED_MODE:
        from ami_lab.upstream.seed_emit import seed_job_logger

        logger = seed_job_logger(Job.objects.get(pk=job_id))
        return (lambda seq: logger.info(message(tag, seq))), (lambda: None)
    adapter = job_logger(job_id)

    def emit(seq: int) -> None:
        adapter.info(message(tag, seq), extra=_extra(tag, seq))

    return emit, (lambda: flush_job_logs(120.0) and None)


def _extra(tag: int, seq: int) -> dict[str, int]:
    return {"writer": tag, "seq": seq}


def _nothing() -> None:
    pass


def stream_logger() -> logging.Logger:
    """A plain logger: one `StreamHandler` on /dev/null with `TEXT_FORMAT`, nothing else."""
    logger = logging.getLogger(STREAM_LOGGER_NAME)
    if not logger.handlers:
        handler = logging.StreamHandler(open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def text_bytes(tag: int, lines: int) -> int:
    """UTF-8 bytes the stream handler wrote for this writer's lines (terminators included),
    counted after the timed loop by formatting the same records again."""
    logger = stream_logger()
    handler = logger.handlers[0]
    total = 0
    for seq in range(lines):
        record = logger.makeRecord(
            logger.name, logging.INFO, __file__, 0, message(tag, seq), (), None,
            extra=_extra(tag, seq),
        )  # fmt: skip
        total += len((handler.format(record) + handler.terminator).encode())
    return total


def _raw_copy_emitter(
    job_id: int, tag: int, lines: int
) -> tuple[Callable[[int], None], Callable[[], None]]:
    from ami.jobs.logging.backends.buffered import copy_rows
    from ami.jobs.logging.rows import LogRow

    pending: list[LogRow] = []

    def emit(seq: int) -> None:
        ctx = {"writer": tag, "seq": seq}
        pending.append(LogRow(job_id, logging.INFO, message(tag, seq), ctx))
        if len(pending) >= RAW_COPY_BATCH or seq == lines - 1:
            copy_rows(pending)
            pending.clear()

    return emit, (lambda: None)


def _raw_insert_emitter(job_id: int, tag: int) -> tuple[Callable[[int], None], Callable[[], None]]:
    import psycopg
    from django.conf import settings

    from ami.jobs.models import Job

    key = Job.objects.values_list("log_partition_key", flat=True).get(pk=job_id)
    conn = psycopg.connect(settings.DATABASE_URL, autocommit=True)
    sql = (
        "INSERT INTO jobs_joblog (job_id, job_partition_key, level, message, context) "
        "VALUES (%s, %s, 20, %s, %s)"
    )

    def emit(seq: int) -> None:
        context = json.dumps({"writer": tag, "seq": seq})
        conn.execute(sql, (job_id, key, message(tag, seq), context), prepare=True)

    return emit, conn.close


if __name__ == "__main__":
    sys.exit(main())
