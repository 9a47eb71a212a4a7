"""pytest plugin: real servers for the whole test run, started once before Django loads.

Servers named by `DATABASE_URL`, `NATS_URL` or `REDIS_URL` are used as they are. Otherwise
the embedded ones start (or are reused if already up) and the ones this run started are
stopped at its end. The URLs are exported so that subprocesses see the same servers.
"""

from __future__ import annotations

import os

import pytest

from ami_lab import servers

_started_here: list[str] = []


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config, parser, args):
    # Runs around pytest-django's hook, which imports the settings.
    already_up = {item.name for item in servers.status() if item.healthy}
    for name in servers.up():
        if name not in already_up:
            _started_here.append(name)
    os.environ.update(servers.dev_environment())
    return (yield)


def pytest_unconfigure(config):
    if os.environ.get("AMI_KEEP_SERVICES"):
        return
    for name in _started_here:
        servers.SERVERS[name].stop()
