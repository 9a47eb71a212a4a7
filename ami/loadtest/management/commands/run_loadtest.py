"""`ami run_loadtest` (what `ami loadtest` runs once the servers are up and migrated)."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from rich.console import Console

from ami.loadtest.config import MODES, FaultOptions, LoadConfig
from ami.loadtest.report import render, write_json
from ami.loadtest.runner import run_all
from ami.services.paths import run_dir


class Command(BaseCommand):
    help = "Run a real job once per log write mode, with injected faults, side by side."

    def add_arguments(self, parser: CommandParser) -> None:
        defaults = LoadConfig()
        parser.add_argument("--images", type=int, default=defaults.images)
        parser.add_argument(
            "--modes", default=",".join(MODES), help=f"comma-separated, from {', '.join(MODES)}"
        )
        parser.add_argument("--results-concurrency", type=int, default=defaults.results_concurrency)
        parser.add_argument("--processing-workers", type=int, default=defaults.processing_workers)
        parser.add_argument("--worker-concurrency", type=int, default=defaults.worker_concurrency)
        parser.add_argument("--batch", type=int, default=defaults.batch)
        parser.add_argument(
            "--inference-delay",
            type=float,
            default=defaults.inference_delay,
            help="synthetic seconds of inference per image",
        )
        parser.add_argument(
            "--timeout", type=float, default=defaults.timeout, help="seconds per mode"
        )
        parser.add_argument(
            "--buffer-interval",
            type=float,
            default=defaults.buffer_interval,
            help="the buffered backend's flush interval, seconds",
        )
        faults = parser.add_argument_group("faults (combinable)")
        faults.add_argument("--idle-in-transaction-timeout", type=float, metavar="S")
        faults.add_argument("--soft-time-limit", type=float, metavar="S")
        faults.add_argument("--terminate-connections-every", type=float, metavar="S")
        faults.add_argument("--kill-workers", type=int, default=0, metavar="N")
        faults.add_argument("--restart-nats", action="store_true")
        faults.add_argument("--hold-job-lock", type=float, metavar="S")
        faults.add_argument(
            "--all-faults", action="store_true", help="every fault with short CI-sized defaults"
        )
        parser.add_argument("--json", type=Path, help="write the figures as JSON here")
        parser.add_argument("--out", type=Path, help="folder for ledgers and process logs")

    def handle(self, *args: object, **options: object) -> None:
        config = build_config(options)
        console = Console()
        out_dir = options["out"] or run_dir() / "loadtest" / time.strftime("%Y%m%d-%H%M%S")
        started = time.monotonic()
        results = run_all(config, Path(out_dir), console)
        render(results, console)
        meta = {
            "config": asdict(config),
            "total_seconds": time.monotonic() - started,
            "out_dir": str(out_dir),
        }
        if options["json"]:
            write_json(results, Path(options["json"]), meta)
            console.print(f"figures written to {options['json']}")
        console.print(f"ledgers and process logs: {out_dir}")


def build_config(options: dict) -> LoadConfig:
    modes = [m.strip() for m in str(options["modes"]).split(",") if m.strip()]
    unknown = sorted(set(modes) - set(MODES))
    if unknown or not modes:
        raise CommandError(
            f"--modes: unknown {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(MODES)}"
        )
    for name in (
        "images",
        "results_concurrency",
        "processing_workers",
        "worker_concurrency",
        "batch",
    ):
        if int(options[name]) < 1:
            raise CommandError(f"--{name.replace('_', '-')} must be >= 1")
    faults = FaultOptions(
        idle_in_transaction_timeout=options["idle_in_transaction_timeout"],
        soft_time_limit=options["soft_time_limit"],
        terminate_connections_every=options["terminate_connections_every"],
        kill_workers=int(options["kill_workers"]),
        restart_nats=bool(options["restart_nats"]),
        hold_job_lock=options["hold_job_lock"],
    )
    if options["all_faults"]:
        faults = FaultOptions(
            idle_in_transaction_timeout=faults.idle_in_transaction_timeout or 2.0,
            soft_time_limit=faults.soft_time_limit or 4.0,
            terminate_connections_every=faults.terminate_connections_every or 3.0,
            kill_workers=faults.kill_workers or 2,
            restart_nats=True,
            hold_job_lock=faults.hold_job_lock or 6.0,
        )
    return LoadConfig(
        images=int(options["images"]),
        modes=modes,
        results_concurrency=int(options["results_concurrency"]),
        processing_workers=int(options["processing_workers"]),
        worker_concurrency=int(options["worker_concurrency"]),
        batch=int(options["batch"]),
        inference_delay=float(options["inference_delay"]),
        timeout=float(options["timeout"]),
        buffer_interval=float(options["buffer_interval"]),
        faults=faults,
    )
