"""`ami services` in subprocesses, on a run folder of its own: up, status, env, down."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ami.services.base import pid_alive
from ami.services.postgres import PostgresServer

URL_VARS = ("DATABASE_URL", "NATS_URL", "REDIS_URL")


def ami(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ami", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=check,
    )


@pytest.fixture
def isolated_env(tmp_path, monkeypatch):
    """An environment with no URL variables and its own run folder."""
    run_dir = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k not in URL_VARS}
    env["AMI_RUN_DIR"] = str(run_dir)
    yield env
    ami("services", "down", env=env, check=False)
    monkeypatch.setenv("AMI_RUN_DIR", str(run_dir))
    shutil.rmtree(PostgresServer().data_dir.parent, ignore_errors=True)


def test_up_status_env_down_leaves_nothing_behind(isolated_env):
    run_dir = Path(isolated_env["AMI_RUN_DIR"])
    up = ami("services", "up", env=isolated_env)
    assert up.stdout.count("yes") == 3, up.stdout
    pids = [
        json.loads((run_dir / f"{name}.json").read_text())["pid"]
        for name in ("postgres", "nats", "redis")
    ]
    assert all(pid_alive(pid) for pid in pids)

    again = ami("services", "up", env=isolated_env)  # idempotent: reuses the same servers
    assert [
        json.loads((run_dir / f"{n}.json").read_text())["pid"]
        for n in ("postgres", "nats", "redis")
    ] == pids, again.stdout

    exports = ami("services", "env", env=isolated_env).stdout
    for var in URL_VARS:
        assert f"export {var}=" in exports
    assert "127.0.0.1" in exports

    ami("services", "down", env=isolated_env)
    assert not any(pid_alive(pid) for pid in pids)
    status = ami("services", "status", env=isolated_env, check=False)
    assert status.returncode == 1
    assert "yes" not in status.stdout


def test_external_urls_start_no_embedded_server(isolated_env):
    from ami import services

    env = {**isolated_env, **services.urls()}  # the servers this test run already uses
    up = ami("services", "up", env=env)
    assert up.stdout.count("external") == 3, up.stdout
    assert not list(Path(env["AMI_RUN_DIR"]).glob("*.json"))


def test_missing_binary_is_a_clear_error(isolated_env):
    env = {**isolated_env, "PATH": "/nonexistent"}
    code = (
        "import sys; from pathlib import Path\n"
        "from ami.services.nats import NatsServer\n"
        "from ami.services.base import ServiceError\n"
        "NatsServer.binary = lambda self: Path('/nonexistent/nats-server')\n"
        "try:\n    NatsServer().start()\nexcept ServiceError as e:\n    print(e); sys.exit(3)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 3
    assert "not found" in result.stdout and "NATS_URL" in result.stdout
