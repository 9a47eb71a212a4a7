"""`ami bench_logs` (what `ami bench logs` runs once the servers are up): see its --help."""

from __future__ import annotations

import argparse

from django.core.management.base import BaseCommand, CommandParser

from ami.jobs.logging.bench import runner


class Command(BaseCommand):
    help = "Job log write backends side by side: lines/s and emit latency (ami bench logs)."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: object) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.add_argument("bench_args", nargs=argparse.REMAINDER)
        return parser

    def run_from_argv(self, argv: list[str]) -> None:
        # The benchmark parses its own options (ami bench logs --help lists them).
        raise SystemExit(runner.main(argv[2:]))
