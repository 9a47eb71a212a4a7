"""`ami loadtest`: servers up, migrate, then the load test (`ami loadtest --help`)."""

from __future__ import annotations

from ami_lab.commands import run_on_servers


def main(argv: list[str]) -> int:
    return run_on_servers("ami_lab.loadtest.command:Command", argv, prog="loadtest")
