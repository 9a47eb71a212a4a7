"""`ami demo`: servers up, migrate, then the pipeline demo (`ami run_demo`, see its --help).

Servers start before Django loads, because the settings read the servers' URLs.
"""

from __future__ import annotations

from ami import services
from ami.cli import run_django


def main(argv: list[str]) -> int:
    try:
        services.up()
    except services.ServiceError as exc:
        print(f"error: {exc}")
        return 1
    run_django(["migrate", "--no-input", "-v", "0"])
    return run_django(["run_demo", *argv])
