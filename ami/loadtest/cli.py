"""`ami loadtest`: servers up, migrate, then `ami run_loadtest` (see its --help)."""

from __future__ import annotations

from ami.cli import run_on_servers


def main(argv: list[str]) -> int:
    return run_on_servers("run_loadtest", argv)
