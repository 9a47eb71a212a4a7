"""Embedded PostgreSQL from the `pgserver` wheel's bundled binaries.

PostgreSQL refuses to run as root, so under root the server runs as a system user
(`ami-postgres`) from files under /var/tmp/ami-jobs-postgres/, which that user can reach
whatever the permissions of the checkout and its virtualenv:
- `pginstall-<hash>/`: one copy of the wheel's binaries, shared by every checkout using
  the same wheel;
- `run-<hash>/`: one checkout's data directory, with an `owner` file naming its run folder.
`ami services down --purge` deletes this checkout's data; `ami services up` stops the
servers of checkouts that no longer exist, deletes their data, and deletes binary copies
that no running server uses and that are not this release's.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
import psycopg

from ami_lab.servers.base import (
    POLL_INTERVAL,
    STOP_TIMEOUT,
    EmbeddedServer,
    ServiceError,
    pid_alive,
)
from ami_lab.servers.paths import run_dir

SERVICE_USER = "ami-postgres"
DATABASE = "ami"
MAX_CONNECTIONS = 300
ROOT_HOME_PARENT = Path("/var/tmp/ami-jobs-postgres")


def _wheel_install_dir() -> Path:
    # Locate the wheel's binaries without importing pgserver (its import has side effects).
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise ServiceError("pgserver is not installed: pip install pgserver")
    return Path(spec.submodule_search_locations[0]) / "pginstall"


def _ensure_service_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVICE_USER,
            ],
            check=True,
        )
        return pwd.getpwnam(SERVICE_USER)


class PostgresServer(EmbeddedServer):
    name = "postgres"
    env_var = "DATABASE_URL"

    @property
    def as_root(self) -> bool:
        return os.geteuid() == 0

    @property
    def root_home(self) -> Path:
        """Under root: this checkout's folder that the service user can reach."""
        return ROOT_HOME_PARENT / f"run-{_digest(str(run_dir()))}"

    @property
    def data_dir(self) -> Path:
        return self.root_home / "data" if self.as_root else self.home / "data"

    @property
    def bin_dir(self) -> Path:
        if not self.as_root:
            return _wheel_install_dir() / "bin"
        return _shared_site() / "pgserver" / "pginstall" / "bin"

    def binary(self) -> Path:
        if self.as_root:
            _copy_binaries()
        return self.bin_dir / "postgres"

    def purge(self) -> bool:
        stopped = super().purge()
        if self.as_root:
            shutil.rmtree(self.root_home, ignore_errors=True)
        return stopped

    def popen_kwargs(self) -> dict:
        if not self.as_root:
            return {}
        user = _ensure_service_user()
        return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}

    def prepare(self) -> None:
        if self.as_root:
            sweep_orphans()
            self.root_home.mkdir(parents=True, exist_ok=True)
            os.chmod(self.root_home, 0o755)
            (self.root_home / "owner").write_text(str(run_dir()))
        if (self.data_dir / "PG_VERSION").exists():
            return
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)  # a half-made cluster from an interrupted initdb
        self.data_dir.mkdir(parents=True)
        if self.as_root:
            user = _ensure_service_user()
            os.chown(self.data_dir, user.pw_uid, user.pw_gid)
        result = subprocess.run(
            [
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ],
            capture_output=True,
            text=True,
            **self.popen_kwargs(),
        )
        if result.returncode != 0:
            raise ServiceError(f"initdb failed:\n{result.stdout}\n{result.stderr}")

    def command(self, port: int) -> list[str]:
        return [
            str(self.binary()),
            "-D",
            str(self.data_dir),
            "-p",
            str(port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "unix_socket_directories=",
            "-c",
            f"max_connections={MAX_CONNECTIONS}",
        ]

    def url_for(self, port: int) -> str:
        return f"postgres://postgres@127.0.0.1:{port}/{DATABASE}"

    def ping(self, url: str) -> None:
        with psycopg.connect(_admin_url(url), connect_timeout=2) as conn:
            conn.execute("SELECT 1")

    def after_start(self, url: str) -> None:
        with psycopg.connect(_admin_url(url), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')

    def stop_signal(self) -> int:
        return signal.SIGINT  # "fast" shutdown: roll back sessions, then exit cleanly


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _shared_site() -> Path:
    """Under root: the one copy of this pgserver release's binaries, shared by every checkout."""
    return ROOT_HOME_PARENT / f"pginstall-{_digest(importlib.metadata.version('pgserver'))}"


def _copy_binaries() -> None:
    """Copy the wheel's binaries and the libraries they load (RPATH ../../../pgserver.libs).

    Copied into a temporary folder and renamed, so checkouts starting at once never see a
    half-made copy.
    """
    site = _shared_site()
    source = _wheel_install_dir()
    if site.exists() or not (source / "bin" / "postgres").exists():
        return  # already there, or start() reports the missing binary
    ROOT_HOME_PARENT.mkdir(parents=True, exist_ok=True)
    os.chmod(ROOT_HOME_PARENT, 0o755)
    partial = Path(tempfile.mkdtemp(dir=ROOT_HOME_PARENT, prefix=".partial-"))
    os.chmod(partial, 0o755)
    shutil.copytree(source, partial / "pgserver" / "pginstall", symlinks=True)
    libs = source.parent.parent / "pgserver.libs"
    if libs.exists():
        shutil.copytree(libs, partial / "pgserver.libs", symlinks=True)
    try:
        partial.rename(site)
    except OSError:  # another checkout finished its copy first
        shutil.rmtree(partial, ignore_errors=True)


def sweep_orphans() -> list[Path]:
    """Stop the servers of checkouts that no longer exist and delete their data.

    Returns the folders removed. A checkout is gone when the run folder named in its
    `owner` file does not exist any more.
    """
    removed = _sweep_old_layout()
    for home in sorted(ROOT_HOME_PARENT.glob("run-*")):
        try:
            owner = Path((home / "owner").read_text().strip())
        except FileNotFoundError:
            continue
        if owner.exists():
            continue
        _stop_postmaster(home / "data")
        shutil.rmtree(home, ignore_errors=True)
        removed.append(home)
    return removed + _sweep_unused_binaries()


def _sweep_unused_binaries() -> list[Path]:
    """Delete binary copies of other pgserver releases (or layouts) that no process runs."""
    current = _shared_site()
    in_use = {
        Path(process.info["exe"])
        for process in psutil.process_iter(["exe"])
        if process.info["exe"] and str(ROOT_HOME_PARENT) in process.info["exe"]
    }
    removed = []
    for site in sorted(ROOT_HOME_PARENT.glob("pginstall-*")):
        if site != current and not any(site in exe.parents for exe in in_use):
            shutil.rmtree(site, ignore_errors=True)
            removed.append(site)
    return removed


def _sweep_old_layout() -> list[Path]:
    """Delete the stopped servers of the layout before `run-*` (a folder per checkout with its
    own copy of the binaries): nothing starts from them any more."""
    removed = []
    for home in sorted(ROOT_HOME_PARENT.glob("[0-9a-f]" * 12)):
        if _postmaster_pid(home / "data") is None:
            shutil.rmtree(home, ignore_errors=True)
            removed.append(home)
    return removed


def _postmaster_pid(data_dir: Path) -> int | None:
    """The pid of the server running on `data_dir`, if one runs."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    return pid if pid_alive(pid) else None


def _stop_postmaster(data_dir: Path) -> None:
    pid = _postmaster_pid(data_dir)
    if pid is None:
        return
    os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + STOP_TIMEOUT
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


def _admin_url(url: str) -> str:
    return url.rsplit("/", 1)[0] + "/postgres"
