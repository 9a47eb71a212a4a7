"""`ami services up --cluster` in subprocesses, on a run folder of its own: three NATS nodes,
a three-server `NATS_URL` with R3 streams in the environment, and nothing left after down."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ami_lab.servers.base import pid_alive
from tests.acceptance.lab.servers.test_servers_cli import ami
from tests.support.servers import URL_VARS

NODES = ("nats-1", "nats-2", "nats-3")


@pytest.fixture
def isolated_env(tmp_path):
    """An environment with no URL variables and its own run folder."""
    env = {k: v for k, v in os.environ.items() if k not in URL_VARS and k != "AMI_NATS_REPLICAS"}
    env["AMI_RUN_DIR"] = str(tmp_path / "run")
    yield env
    ami("services", "down", "--purge", env=env, check=False)


def test_up_cluster_env_down(isolated_env):
    run_dir = Path(isolated_env["AMI_RUN_DIR"])
    up = ami("services", "up", "--cluster", env=isolated_env)
    assert up.stdout.count("yes") == 3, up.stdout
    pids = [json.loads((run_dir / f"{node}.json").read_text())["pid"] for node in NODES]
    assert all(pid_alive(pid) for pid in pids)

    status = ami("services", "status", env=isolated_env)  # no switch: the running cluster
    assert status.returncode == 0 and status.stdout.count("yes") == 3, status.stdout
    env = ami("services", "env", env=isolated_env).stdout
    nats_url = next(line for line in env.splitlines() if "NATS_URL=" in line)
    assert nats_url.count("nats://127.0.0.1:") == 3
    assert "export AMI_NATS_REPLICAS=3" in env

    down = ami("services", "down", env=isolated_env)
    assert "nats" in down.stdout
    assert not any(pid_alive(pid) for pid in pids)
    assert not any((run_dir / f"{node}.json").exists() for node in NODES)
