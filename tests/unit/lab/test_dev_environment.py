"""Development gets a secret key of its own checkout; production gets nothing from the lab."""

from __future__ import annotations

import stat

import pytest

from ami_lab import servers


@pytest.fixture
def fresh_run_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("AMI_RUN_DIR", str(tmp_path))
    monkeypatch.delenv(servers.SECRET_KEY_VAR, raising=False)
    return tmp_path


def test_the_dev_key_is_made_once_private_and_kept(fresh_run_dir):
    key = servers.dev_secret_key()
    assert len(key) >= 50
    assert servers.dev_secret_key() == key
    mode = (fresh_run_dir / servers.SECRET_KEY_FILE).stat().st_mode
    assert stat.S_IMODE(mode) == 0o600


def test_a_key_in_the_environment_wins(fresh_run_dir, monkeypatch):
    monkeypatch.setenv(servers.SECRET_KEY_VAR, "set-by-the-operator")
    assert servers.dev_environment()[servers.SECRET_KEY_VAR] == "set-by-the-operator"


def test_the_ami_command_gets_nothing_when_no_embedded_server_runs(fresh_run_dir):
    assert servers.embedded_environment() == {}
    assert not (fresh_run_dir / servers.SECRET_KEY_FILE).exists()
