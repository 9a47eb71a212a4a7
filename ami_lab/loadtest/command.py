"""`ami loadtest` once the servers are up and migrated: one real job per log mode, with faults."""

from __future__ import annotations

import random
import time
from dataclasses import asdict
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from rich.console import Console

from ami_lab.loadtest import verdict
from ami_lab.loadtest.config import LOG_MODES, FaultOptions, LoadConfig
from ami_lab.loadtest.phase_faults import (
    KINDS,
    PhaseFaultSpec,
    default_specs,
    parse_phases,
    random_specs,
)
from ami_lab.loadtest.phases import PHASES
from ami_lab.loadtest.report import render, write_json
from ami_lab.loadtest.runner import run_all
from ami_lab.servers.paths import run_dir


class Command(BaseCommand):
    help = "Run a real job once per log write mode, with injected faults, side by side."

    def add_arguments(self, parser: CommandParser) -> None:
        defaults = LoadConfig()
        parser.add_argument("--images", type=int, default=defaults.images)
        parser.add_argument(
            "--modes",
            default=",".join(LOG_MODES),
            help=f"comma-separated, from {', '.join(LOG_MODES)}",
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
        parser.add_argument(
            "--nats-request-timeout",
            type=float,
            default=defaults.nats_request_timeout,
            help="the workers' NATS request timeout, seconds",
        )
        parser.add_argument(
            "--hostile-lines",
            type=int,
            default=0,
            metavar="N",
            help="every N-th job log line in the workers carries NUL, lone surrogates, control"
            " or bidi characters (in its message and its context); 0: none",
        )
        parser.add_argument(
            "--lines-per-result",
            type=int,
            default=defaults.lines_per_result,
            metavar="N",
            help="job log lines a results worker writes per result before saving it, as a"
            " pipeline that logs per image does (the product logs one line per batch)",
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
        phases = parser.add_argument_group(
            "phase faults: a window of trouble covering one phase of the job"
        )
        phases.add_argument(
            "--phases",
            "--fault-phase",
            dest="phases",
            default="",
            help=f"comma-separated, from {', '.join(PHASES)}, or 'all'",
        )
        phases.add_argument(
            "--phase-fault-kind",
            choices=KINDS,
            help="strike every chosen phase with this kind where it applies (default: per phase)",
        )
        phases.add_argument(
            "--phase-fault-window", type=float, metavar="S", help="seconds each window lasts"
        )
        phases.add_argument(
            "--random-faults",
            action="store_true",
            help="draw each phase's fault kind and window from a seed (all phases by default)",
        )
        phases.add_argument(
            "--seed", type=int, help="seed for --random-faults (implies it); printed every run"
        )
        parser.add_argument("--json", type=Path, help="write the figures as JSON here")
        parser.add_argument("--out", type=Path, help="folder for ledgers and process logs")

    def handle(self, *args: object, **options: object) -> None:
        config = build_config(options)
        console = Console()
        out_dir = options["out"] or run_dir() / "loadtest" / time.strftime("%Y%m%d-%H%M%S")
        if config.seed is not None:
            console.print(f"random phase faults, seed {config.seed} (--seed {config.seed})")
        if config.phase_faults:
            labels = ", ".join(spec.label() for spec in config.phase_faults)
            console.print(f"phase faults: {labels}")
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
        failed = verdict.failures(results)
        if failed:
            raise CommandError(verdict.message(failed))
        console.print("load test passed: every job right, counters exact, no line lost")


def build_config(options: dict) -> LoadConfig:
    modes = [m.strip() for m in str(options["modes"]).split(",") if m.strip()]
    unknown = sorted(set(modes) - set(LOG_MODES))
    if unknown or not modes:
        raise CommandError(
            f"--modes: unknown {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(LOG_MODES)}"
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
    specs, seed = build_phase_faults(options)
    return LoadConfig(
        phase_faults=specs,
        seed=seed,
        images=int(options["images"]),
        modes=modes,
        results_concurrency=int(options["results_concurrency"]),
        processing_workers=int(options["processing_workers"]),
        worker_concurrency=int(options["worker_concurrency"]),
        batch=int(options["batch"]),
        inference_delay=float(options["inference_delay"]),
        timeout=float(options["timeout"]),
        buffer_interval=float(options["buffer_interval"]),
        nats_request_timeout=float(options.get("nats_request_timeout") or 2.0),
        hostile_every=max(0, int(options.get("hostile_lines") or 0)),
        lines_per_result=max(0, int(options.get("lines_per_result") or 0)),
        faults=faults,
    )


def build_phase_faults(options: dict) -> tuple[list[PhaseFaultSpec], int | None]:
    """The phase faults asked for, and the seed they were drawn from (None if not random)."""
    try:
        phases = parse_phases(str(options.get("phases") or ""))
    except ValueError as exc:
        raise CommandError(f"--phases: {exc}") from exc
    seed = options.get("seed")
    if options.get("random_faults") or seed is not None:
        seed = seed if seed is not None else random.randrange(2**31)
        return random_specs(phases or list(PHASES), seed), seed
    specs = default_specs(phases, options.get("phase_fault_kind"))
    window = options.get("phase_fault_window")
    if window is not None:
        if window <= 0:
            raise CommandError("--phase-fault-window must be > 0")
        specs = [PhaseFaultSpec(spec.phase, spec.kind, float(window)) for spec in specs]
    return specs, None
