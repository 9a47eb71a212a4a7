"""The `ami` command: the project's own subcommands, and Django's management commands.

`ami services up`, `ami demo`, ... are the project's; anything else (`ami migrate`,
`ami shell`, `ami backfill_job_logs`) goes to Django's `manage.py`.
"""

from __future__ import annotations

import importlib
import os
import sys

from ami import services

# subcommand -> "module:function"; each function takes the remaining argv, returns exit code
COMMANDS = {
    "services": "ami.services.cli:main",
    "demo": "ami.demo:main",
    "worker": "ami.ml.worker.cli:main",  # the reference processing service
    "bench": "ami.bench:main",  # benchmarks: ami bench logs|results|api
    "loadtest": "ami.loadtest.cli:main",  # the incident, reproduced with faults
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        module_name, func_name = COMMANDS[argv[0]].split(":")
        return getattr(importlib.import_module(module_name), func_name)(argv[1:]) or 0
    if not argv or argv[0] in {"-h", "--help", "help"}:
        _print_help()
        if not argv:
            return 0
    return run_django(argv)


def run_django(argv: list[str]) -> int:
    """Run a Django management command (`ami migrate` is `manage.py migrate`).

    The URLs of this checkout's running embedded servers go into the environment first
    (a variable already set wins), so the settings, and every child, see them.
    """
    for name, url in services.urls().items():
        os.environ.setdefault(name, url)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ami.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(["ami", *argv])
    return 0


def run_on_servers(command: str, argv: list[str]) -> int:
    """Start the servers (embedded unless their URLs are set), migrate, run a command.

    Servers start before Django loads, because the settings read the servers' URLs. The
    ones this call started are stopped at the end, unless `AMI_KEEP_SERVICES` is set.
    Asking for `--help` starts nothing.
    """
    if {"-h", "--help"} & set(argv):
        # Help connects to nothing, but the settings need a URL for each server to load.
        for server in services.SERVERS.values():
            os.environ.setdefault(server.env_var, server.url_for(0).replace("127.0.0.1", "unset"))
        return run_django([command, *argv])
    already_up = {item.name for item in services.status() if item.healthy}
    try:
        started = [name for name in services.up() if name not in already_up]
    except services.ServiceError as exc:
        print(f"error: {exc}")
        return 1
    try:
        run_django(["migrate", "--no-input", "-v", "0"])
        return run_django([command, *argv])
    finally:
        _stop_started(started)


def _stop_started(started: list[str]) -> None:
    if not started:
        return
    names = ", ".join(started)
    if os.environ.get("AMI_KEEP_SERVICES"):
        print(f"Embedded servers still running: {names} (stop them: ami services down)")
        return
    for name in started:
        services.SERVERS[name].stop()
    print(f"Stopped the embedded servers this command started: {names}.")


def _print_help() -> None:
    print("usage: ami COMMAND [ARGS]\n\nproject commands:")
    for name in COMMANDS:
        print(f"  {name}")
    print("\nany other COMMAND is a Django management command (ami help --commands).\n")
