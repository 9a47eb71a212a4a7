"""`ami bench SUITE`: benchmarks that print figures (never timed assertions in tests)."""

from __future__ import annotations

import importlib

SUITES = {"logs": "ami.jobs.logging.bench.runner:main"}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in SUITES:
        print(f"usage: ami bench {{{','.join(SUITES)}}} [OPTIONS]")
        return 2
    module_name, func_name = SUITES[argv[0]].split(":")
    return getattr(importlib.import_module(module_name), func_name)(argv[1:]) or 0
