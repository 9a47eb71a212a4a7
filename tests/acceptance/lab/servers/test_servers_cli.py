"""`ami services` in subprocesses, on a run folder of its own: up, status, env, down."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ami_lab.servers.base import pid_alive
from ami_lab.servers.nats import NatsServer
from ami_lab.servers.postgres import PostgresServer
from ami_lab.servers.redis import RedisServer
from tests.support.servers import URL_VARS, in_run_dir


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
    ami("services", "down", "--purge", env=env, check=False)


def postgres_data_dir(run_dir: Path) -> Path:
    """Where the embedded PostgreSQL of `run_dir` keeps its data (outside it under root)."""
    with in_run_dir(run_dir):
        return PostgresServer().data_dir


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


def test_down_purge_deletes_the_data_wherever_it_lives(isolated_env):
    run_dir = Path(isolated_env["AMI_RUN_DIR"])
    ami("services", "up", env=isolated_env)
    data_dir = postgres_data_dir(run_dir)
    assert (data_dir / "PG_VERSION").exists()

    down = ami("services", "down", "--purge", env=isolated_env)
    assert "data deleted" in down.stdout
    assert not data_dir.exists()
    assert not (run_dir / "nats").exists() and not (run_dir / "redis").exists()


def test_a_deleted_checkout_has_its_server_stopped_and_its_data_removed(isolated_env, tmp_path):
    gone = {**isolated_env, "AMI_RUN_DIR": str(tmp_path / "deleted-checkout" / ".run")}
    ami("services", "up", env=gone)
    pid = json.loads((Path(gone["AMI_RUN_DIR"]) / "postgres.json").read_text())["pid"]
    data_dir = postgres_data_dir(Path(gone["AMI_RUN_DIR"]))
    with in_run_dir(Path(gone["AMI_RUN_DIR"])):
        NatsServer().stop()  # only PostgreSQL is left behind
        RedisServer().stop()
    shutil.rmtree(tmp_path / "deleted-checkout")  # the checkout is deleted, its server runs

    ami("services", "up", env=isolated_env)  # any other checkout's start sweeps it

    if os.geteuid() != 0:  # the data lived inside the deleted checkout: nothing to sweep
        os.kill(pid, signal.SIGINT)
        pytest.skip("only under root does PostgreSQL keep its data outside the checkout")
    assert not pid_alive(pid)
    assert not data_dir.exists()


def test_external_urls_start_no_embedded_server(isolated_env):
    from ami_lab import servers as services

    env = {**isolated_env, **services.urls()}  # the servers this test run already uses
    up = ami("services", "up", env=env)
    assert up.stdout.count("external") == 3, up.stdout
    assert not list(Path(env["AMI_RUN_DIR"]).glob("*.json"))


def test_missing_binary_is_a_clear_error(isolated_env):
    env = {**isolated_env, "PATH": "/nonexistent"}
    code = (
        "import sys; from pathlib import Path\n"
        "from ami_lab.servers.nats import NatsServer\n"
        "from ami_lab.servers.base import ServiceError\n"
        "NatsServer.binary = lambda self: Path('/nonexistent/nats-server')\n"
        "try:\n    NatsServer().start()\nexcept ServiceError as e:\n    print(e); sys.exit(3)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 3
    assert "not found" in result.stdout and "NATS_URL" in result.stdout
