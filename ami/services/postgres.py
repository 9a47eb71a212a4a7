"""Embedded PostgreSQL from the `pgserver` wheel's bundled binaries.

PostgreSQL refuses to run as root, so under root the server runs as a system user
(`ami-postgres`), from a copy of the binaries and a data directory under /var/tmp, which
that user can reach whatever the permissions of the project folder and the virtualenv.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

import psycopg

from ami.services.base import EmbeddedServer, ServiceError
from ami.services.paths import run_dir

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
        """Under root: this project's folder that the service user can reach."""
        digest = hashlib.sha256(str(run_dir()).encode()).hexdigest()[:12]
        return ROOT_HOME_PARENT / digest

    @property
    def data_dir(self) -> Path:
        return self.root_home / "data" if self.as_root else self.home / "data"

    @property
    def bin_dir(self) -> Path:
        if not self.as_root:
            return _wheel_install_dir() / "bin"
        return self.root_home / "site" / "pgserver" / "pginstall" / "bin"

    def binary(self) -> Path:
        if self.as_root:
            self._copy_binaries()
        return self.bin_dir / "postgres"

    def _copy_binaries(self) -> None:
        """Copy the wheel's binaries and the libraries they load (RPATH ../../../pgserver.libs)."""
        if (self.bin_dir / "postgres").exists():
            return
        source = _wheel_install_dir()
        if not (source / "bin" / "postgres").exists():
            return  # start() reports the missing binary
        site = self.root_home / "site"
        site.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root_home, 0o755)
        shutil.copytree(source, site / "pgserver" / "pginstall", symlinks=True, dirs_exist_ok=True)
        libs = source.parent.parent / "pgserver.libs"
        if libs.exists():
            shutil.copytree(libs, site / "pgserver.libs", symlinks=True, dirs_exist_ok=True)

    def popen_kwargs(self) -> dict:
        if not self.as_root:
            return {}
        user = _ensure_service_user()
        return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}

    def prepare(self) -> None:
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


def _admin_url(url: str) -> str:
    return url.rsplit("/", 1)[0] + "/postgres"
