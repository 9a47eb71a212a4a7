"""`ami demo`: bring up the servers, migrate, and report what runs where."""

from __future__ import annotations

from ami import services
from ami.cli import run_django
from ami.services.cli import main as services_main


def main(argv: list[str]) -> int:
    services.up()
    run_django(["migrate", "--no-input", "-v", "0"])
    return services_main(["status"])
