"""The `ami` command: Django's management commands, plus subcommands that installed
packages register.

`ami migrate`, `ami start_job`, `ami backfill_job_logs` go to Django's `manage.py`. A package
adds a subcommand through the `ami.commands` entry-point group ("name = module:function", the
function takes the remaining argv and returns an exit code): the development tooling
(`ami_lab`) adds `services`, `demo`, `worker`, `bench` and `loadtest` that way, so this
module never imports it.

Before Django loads, each function of the `ami.environment` entry-point group may fill in
the environment (the tooling's one exports the URLs of this checkout's running embedded
servers); a variable already set wins.
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import EntryPoint, entry_points

COMMAND_GROUP = "ami.commands"
ENVIRONMENT_GROUP = "ami.environment"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = registered_commands()
    if argv and argv[0] in commands:
        return commands[argv[0]].load()(argv[1:]) or 0
    if not argv or argv[0] in {"-h", "--help", "help"}:
        _print_help(commands)
        if not argv:
            return 0
    return run_django(argv)


def registered_commands() -> dict[str, EntryPoint]:
    return {entry.name: entry for entry in entry_points(group=COMMAND_GROUP)}


def run_django(argv: list[str]) -> int:
    """Run a Django management command (`ami migrate` is `manage.py migrate`)."""
    for entry in entry_points(group=ENVIRONMENT_GROUP):
        for name, value in entry.load()().items():
            os.environ.setdefault(name, value)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ami.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(["ami", *argv])
    return 0


def _print_help(commands: dict[str, EntryPoint]) -> None:
    print("usage: ami COMMAND [ARGS]\n")
    if commands:
        print("registered commands:")
        for name in sorted(commands):
            print(f"  {name}")
    print("\nany other COMMAND is a Django management command (ami help --commands).\n")
