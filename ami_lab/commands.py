"""How a lab command runs: servers up, Django set up and migrated, then the command.

The servers (embedded unless their URL variable is set) start before Django loads, because
the settings read their URLs from the environment; every child process inherits them. The
servers this call started are stopped at the end, unless `AMI_KEEP_SERVICES` is set.
Asking for `--help` starts nothing.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable

from ami_lab import servers


def run_on_servers(target: str, argv: list[str], *, prog: str) -> int:
    """Run `target` ("module:Name", a Django `BaseCommand` class) as `ami PROG ARGV...`."""
    if {"-h", "--help"} & set(argv):
        # Help connects to nothing, but the settings need a URL for each server to load.
        for server in servers.SERVERS.values():
            os.environ.setdefault(server.env_var, server.url_for(0).replace("127.0.0.1", "unset"))
        os.environ.setdefault(servers.SECRET_KEY_VAR, "help-only")
        return _run(target, argv, prog)
    already_up = {item.name for item in servers.status() if item.healthy}
    try:
        started = [name for name in servers.up() if name not in already_up]
    except servers.ServiceError as exc:
        print(f"error: {exc}")
        return 1
    try:
        for name, value in servers.dev_environment().items():
            os.environ.setdefault(name, value)
        _setup_django()
        from django.core.management import call_command

        call_command("migrate", interactive=False, verbosity=0)
        return _run(target, argv, prog)
    finally:
        _stop_started(started)


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ami.settings")
    import django

    django.setup()


def _run(target: str, argv: list[str], prog: str) -> int:
    _setup_django()
    command = _load(target)()
    command.run_from_argv(["ami", prog, *argv])  # exits non-zero on a CommandError
    return 0


def _load(target: str) -> Callable:
    module_name, _, name = target.partition(":")
    return getattr(importlib.import_module(module_name), name)


def _stop_started(started: list[str]) -> None:
    if not started:
        return
    names = ", ".join(started)
    if os.environ.get("AMI_KEEP_SERVICES"):
        print(f"Embedded servers still running: {names} (stop them: ami services down)")
        return
    for name in started:
        servers.SERVERS[name].stop()
    print(f"Stopped the embedded servers this command started: {names}.")
