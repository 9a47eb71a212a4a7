"""`ami demo`: servers up, migrate, then the pipeline demo (`ami run_demo`, see its --help)."""

from __future__ import annotations

from ami.cli import run_on_servers


def main(argv: list[str]) -> int:
    return run_on_servers("run_demo", argv)
