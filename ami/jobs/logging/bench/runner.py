"""`ami bench logs`: raw COPY, each backend and the seed's emit, 8 writer processes each.

Every mode runs on its own fresh job in the same database, one after the other. For each:
lines emitted and stored, aggregate lines/s (all lines over the wall time from the first
writer's start to the last writer's end, flush included), emit latency p50/p99/max, and the
rate as a ratio of raw COPY's. Printed as a table; `--json PATH` writes the same figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import django
from rich.console import Console
from rich.table import Table

MODES = ("raw_copy", "sync", "buffered", "legacy_json", "in_transaction", "seed")
JSON_COLUMN_MODES = ("legacy_json", "seed")  # store into the capped JSON column
WRITER_MODULE = "ami.jobs.logging.bench.writer"
UPDATER_MODULE = "ami.jobs.logging.bench.updater"


@dataclass
class ModeResult:
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


def summarize(mode: str, results: list[dict], stored: int) -> ModeResult:
    latencies = [lat for result in results for lat in result["latencies_us"]]
    seconds = max(r["end"] for r in results) - min(r["start"] for r in results)
    per_line = mode != "raw_copy"  # the baseline has no per-line emit
    return ModeResult(
        mode=mode,
        processes=len(results),
        emitted=len(latencies),
        stored=stored,
        seconds=round(seconds, 3),
        lines_per_s=round(len(latencies) / seconds, 1),
        p50_ms=round(percentile(latencies, 0.50) / 1000, 3) if per_line else None,
        p99_ms=round(percentile(latencies, 0.99) / 1000, 3) if per_line else None,
        max_ms=round(max(latencies) / 1000, 3) if per_line else None,
    )


def render(results: list[ModeResult], console: Console) -> None:
    writers = results[0].processes if results else 0
    table = Table(title=f"Job log write backends ({writers} writer processes, one job)")
    for column in ("mode", "emitted", "stored", "seconds", "lines/s", "x raw COPY",
                   "p50 ms", "p99 ms", "max ms"):  # fmt: skip
        table.add_column(column, justify="left" if column == "mode" else "right")

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:g}"

    for r in results:
        table.add_row(
            r.mode, str(r.emitted), str(r.stored), cell(r.seconds), cell(r.lines_per_s),
            cell(r.ratio_to_raw_copy), cell(r.p50_ms), cell(r.p99_ms), cell(r.max_ms),
        )  # fmt: skip
    console.print(table)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ami bench logs", description=__doc__)
    parser.add_argument("--processes", type=int, default=8, help="writer processes per mode")
    parser.add_argument("--lines", type=int, default=2000, help="lines per writer process")
    parser.add_argument(
        "--legacy-lines", type=int, default=100,
        help="lines per writer for the JSON-column modes (their column keeps 1000 lines)",
    )  # fmt: skip
    parser.add_argument("--modes", default=",".join(MODES), help=f"subset of {','.join(MODES)}")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    unknown = set(args.modes.split(",")) - set(MODES)
    if unknown:
        parser.error(f"unknown mode(s): {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ami.settings")
    django.setup()
    from ami.jobs.logging.bench.measure import measure_mode

    console = Console(width=max(Console().width, 120))
    results: list[ModeResult] = []
    for mode in args.modes.split(","):
        lines = args.legacy_lines if mode in JSON_COLUMN_MODES else args.lines
        console.print(f"[bold]{mode}[/]: {args.processes} x {lines} lines ...")
        results.append(measure_mode(mode, args.processes, lines))
        time.sleep(0.5)  # let autovacuum and the WAL writer settle between modes
    raw = next((r for r in results if r.mode == "raw_copy"), None)
    for r in results:
        r.ratio_to_raw_copy = round(r.lines_per_s / raw.lines_per_s, 3) if raw else None
    render(results, console)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
        console.print(f"figures written to {args.json}")
    return 0
