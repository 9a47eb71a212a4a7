"""`ami bench logs`: raw COPY, each backend and the seed's emit, 8 writer processes each.

Every mode runs on its own fresh job (and JobLog partition) in the same database, one after
the other. For each: lines emitted and stored, aggregate lines/s (all lines over the wall
time from the first writer's start to the last writer's end, flush included), emit latency
p50/p99/max, and the rate as a ratio of raw COPY's. A second table gives each line's cost:
the writers' CPU per line and the emit p50, each as a multiple of a plain
`logging.StreamHandler` writing text lines to /dev/null (the `stream_handler` mode), and the
bytes stored per line (heap and indexes, `measure.stored_bytes`) against the bytes of the
same line as text. Printed as tables; `--json PATH` writes the same figures.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

from django.core.management.base import BaseCommand, CommandParser
from rich.console import Console
from rich.table import Table

from ami.jobs.logging import legacy
from ami_lab.bench.logs.measure import BENCH_PROJECT, measure_mode
from ami_lab.bench.logs.visibility import report_visibility
from ami_lab.bench.logs.writers import (
    BENCH_MODES,
    JSON_COLUMN_MODES,
    STREAM_HANDLER_MODE,
    BackendFigures,
)

SETTLE_SECONDS = 0.5  # between modes, for autovacuum and the WAL writer


def modes_list(value: str) -> list[str]:
    modes = value.split(",")
    unknown = set(modes) - set(BENCH_MODES)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown mode(s): {', '.join(sorted(unknown))}")
    return modes


class Command(BaseCommand):
    help = __doc__.splitlines()[0]

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--processes", type=int, default=8, help="writer processes per mode")
        parser.add_argument("--lines", type=int, default=2000, help="lines per writer process")
        parser.add_argument(
            "--legacy-lines", type=int, default=100,
            help=f"lines per writer, JSON-column modes (the column keeps {legacy.MAX_LINES})",
        )  # fmt: skip
        parser.add_argument(
            "--modes",
            type=modes_list,
            default=list(BENCH_MODES),
            help=f"subset of {','.join(BENCH_MODES)}",
        )
        parser.add_argument("--json", type=Path, help="also write the figures to this file")
        parser.add_argument(
            "--visibility", action="store_true",
            help="also time emit to visible in JobLog, one line at a time (sync, buffered, redis)",
        )  # fmt: skip

    def handle(self, *args: object, **options: object) -> None:
        console = Console(width=max(Console().width, 120))
        results: list[BackendFigures] = []
        for mode in options["modes"]:
            lines = options["legacy_lines"] if mode in JSON_COLUMN_MODES else options["lines"]
            console.print(f"[bold]{mode}[/]: {options['processes']} x {lines} lines ...")
            results.append(measure_mode(mode, options["processes"], lines))
            time.sleep(SETTLE_SECONDS)
        raw = next((r for r in results if r.mode == "raw_copy"), None)
        for r in results:
            r.ratio_to_raw_copy = round(r.lines_per_s / raw.lines_per_s, 3) if raw else None
        add_baseline_ratios(results)
        render(results, console)
        render_costs(results, console)
        ceiling = next((r for r in results if r.mode == "raw_insert"), None)
        sync = next((r for r in results if r.mode == "sync"), None)
        if ceiling and sync:
            console.print(
                f"sync / raw_insert: {sync.lines_per_s / ceiling.lines_per_s:.2f}x the rate, "
                f"{sync.p99_ms / ceiling.p99_ms:.2f}x the p99"
            )
        if options["visibility"]:
            report_visibility(options["modes"], BENCH_PROJECT, console)
        if options["json"]:
            options["json"].write_text(json.dumps([asdict(r) for r in results], indent=2))
            console.print(f"figures written to {options['json']}")


def ratio(value: float | None, base: float | None) -> float | None:
    return round(value / base, 2) if value is not None and base else None


def add_baseline_ratios(results: list[BackendFigures]) -> None:
    """Each mode's emit p50 and CPU against stream_handler's, its bytes against text's."""
    base = next((r for r in results if r.mode == STREAM_HANDLER_MODE), None)
    if base is None:
        return
    for r in results:
        r.p50_x_stream_handler = ratio(r.p50_ms, base.p50_ms)
        r.cpu_x_stream_handler = ratio(r.cpu_us_per_line, base.cpu_us_per_line)
        if r.heap_bytes_per_line is not None:
            stored = r.heap_bytes_per_line + r.index_bytes_per_line
            r.stored_x_text = ratio(stored, base.text_bytes_per_line)


def cell(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def render(results: list[BackendFigures], console: Console) -> None:
    writers = results[0].processes if results else 0
    table = Table(title=f"Job log write backends ({writers} writer processes, one job)")
    for column in ("mode", "emitted", "stored", "seconds", "lines/s", "x raw COPY",
                   "p50 ms", "p99 ms", "max ms"):  # fmt: skip
        table.add_column(column, justify="left" if column == "mode" else "right")
    for r in results:
        table.add_row(
            r.mode, str(r.emitted), str(r.stored), cell(r.seconds), cell(r.lines_per_s),
            cell(r.ratio_to_raw_copy), cell(r.p50_ms), cell(r.p99_ms), cell(r.max_ms),
        )  # fmt: skip
    console.print(table)


def render_costs(results: list[BackendFigures], console: Console) -> None:
    table = Table(title="Cost per line (x SH: as a multiple of the stream_handler mode's)")
    for column in ("mode", "CPU us/line", "CPU x SH", "p50 x SH", "heap B/line",
                   "index B/line", "stored x text"):  # fmt: skip
        table.add_column(column, justify="left" if column == "mode" else "right")
    for r in results:
        table.add_row(
            r.mode, cell(r.cpu_us_per_line), cell(r.cpu_x_stream_handler),
            cell(r.p50_x_stream_handler), cell(r.heap_bytes_per_line),
            cell(r.index_bytes_per_line), cell(r.stored_x_text),
        )  # fmt: skip
    console.print(table)
    base = next((r for r in results if r.mode == STREAM_HANDLER_MODE), None)
    if base is not None:
        console.print(
            f"text line ({STREAM_HANDLER_MODE}'s output): {cell(base.text_bytes_per_line)} "
            "bytes/line; stored x text = (heap + index bytes per line) / that"
        )
