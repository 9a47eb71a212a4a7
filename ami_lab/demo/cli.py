"""`ami demo`: servers up, migrate, then the pipeline demo (`ami demo --help`)."""

from __future__ import annotations

from ami_lab.commands import run_on_servers


def main(argv: list[str]) -> int:
    return run_on_servers("ami_lab.demo.command:Command", argv, prog="demo")
