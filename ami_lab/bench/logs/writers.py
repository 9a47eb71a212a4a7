"""The log benchmark's writer processes: start them together, collect and sum up their figures.

No Django here: the writers (`writer.py`) and the row updater (`updater.py`) are processes of
their own; `measure.py` counts what they stored.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

BENCH_MODES = (
    "raw_copy", "raw_insert", "sync", "buffered", "legacy_json", "in_transaction", "seed",
    "redis",
)  # fmt: skip
JSON_COLUMN_MODES = ("legacy_json", "seed")  # store into the capped JSON column

# The emit-cost baseline (plain logging.StreamHandler, nothing stored), run after the others.
# Added here rather than in the tuple above, so a new backend's mode stays a one-line change.
STREAM_HANDLER_MODE = "stream_handler"
BENCH_MODES += (STREAM_HANDLER_MODE,)
WRITER_MODULE = "ami_lab.bench.logs.writer"
UPDATER_MODULE = "ami_lab.bench.logs.updater"


@dataclass
class BackendFigures:
    """One mode's figures: one row of the benchmark's table."""

    mode: str
    processes: int
    emitted: int
    stored: int
    seconds: float
    lines_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    ratio_to_raw_copy: float | None = None
    cpu_us_per_line: float | None = None  # the writers' own CPU (not the server's)
    # Emit p50 and CPU per line as a multiple of the stream_handler mode's (same run).
    p50_x_stream_handler: float | None = None
    cpu_x_stream_handler: float | None = None
    # Stored bytes per line in JobLog (see `measure.stored_bytes`); None: not stored there.
    heap_bytes_per_line: float | None = None
    index_bytes_per_line: float | None = None
    # stream_handler: bytes per line of its text output; others: stored bytes (heap + index)
    # per line as a multiple of that.
    text_bytes_per_line: float | None = None
    stored_x_text: float | None = None


def percentile(values: list[int], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run_writers(
    mode: str, job_id: int, processes: int, lines: int, env: dict[str, str] | None = None
) -> list[dict]:
    """Start `processes` writers, release them together, return their JSON results."""
    env = {**(env or os.environ), "JOB_LOG_DUAL_WRITE": "false"}
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                WRITER_MODULE,
                "--job",
                str(job_id),
                "--mode",
                mode,
                "--lines",
                str(lines),
                "--tag",
                str(tag),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )  # fmt: skip
        for tag in range(processes)
    ]
    try:
        for writer in writers:
            if writer.stdout.readline().strip() != "ready":
                raise RuntimeError(f"writer for {mode} failed to start (exit {writer.wait()})")
        for writer in writers:
            writer.stdin.write("go\n")
            writer.stdin.flush()
        results = [json.loads(writer.communicate(timeout=600)[0]) for writer in writers]
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
    for writer in writers:
        if writer.returncode != 0:
            raise RuntimeError(f"a {mode} writer exited with {writer.returncode}")
    return results


class ProgressUpdater:
    """A process updating the job row in a loop (through `lock_job`) while writers run."""

    def __init__(self, job_id: int, stop_file: Path, env: dict[str, str] | None = None) -> None:
        self.stop_file = stop_file
        self.process = subprocess.Popen(
            [sys.executable, "-m", UPDATER_MODULE, "--job", str(job_id),
             "--stop-file", str(stop_file)],
            stdout=subprocess.PIPE, env=env or dict(os.environ), text=True,
        )  # fmt: skip
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError("progress updater failed to start")

    def stop(self) -> int:
        """Stop the loop; return how many updates it made."""
        self.stop_file.touch()
        out, _ = self.process.communicate(timeout=60)
        return int(out.strip() or 0)


def summarize(mode: str, results: list[dict], stored: int) -> BackendFigures:
    latencies = [lat for result in results for lat in result["latencies_us"]]
    seconds = max(r["end"] for r in results) - min(r["start"] for r in results)
    per_line = mode != "raw_copy"  # the baseline has no per-line emit
    cpu = sum(r["cpu_s"] for r in results)
    text = sum(r.get("text_bytes", 0) for r in results)
    return BackendFigures(
        mode=mode,
        processes=len(results),
        emitted=len(latencies),
        stored=stored,
        seconds=round(seconds, 3),
        lines_per_s=round(len(latencies) / seconds, 1),
        p50_ms=round(percentile(latencies, 0.50) / 1000, 3) if per_line else None,
        p99_ms=round(percentile(latencies, 0.99) / 1000, 3) if per_line else None,
        max_ms=round(max(latencies) / 1000, 3) if per_line else None,
        cpu_us_per_line=round(cpu * 1e6 / len(latencies), 1),
        text_bytes_per_line=round(text / len(latencies), 1) if text else None,
    )
