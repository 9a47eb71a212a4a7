"""Embedded server lifecycle: start once, judge readiness by connecting, stop with nothing left.

Each server lives in `<run dir>/<name>/` and records its pid, port and URL in
`<run dir>/<name>.json`. A server is "up" only when a real client connection succeeds;
a pid alone proves nothing (a stopped server may linger as a zombie for a while).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ami_lab.processes import free_port
from ami_lab.servers.paths import run_dir

READY_TIMEOUT = 60.0  # seconds
STOP_TIMEOUT = 20.0  # seconds
POLL_INTERVAL = 0.1  # seconds


class ServiceError(RuntimeError):
    """A server could not be started, reached or stopped; the message says what to do."""


@dataclass
class ServiceState:
    pid: int
    port: int
    url: str


def pid_alive(pid: int) -> bool:
    """True while `pid` runs and is not a zombie."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state_line = next((line for line in status.splitlines() if line.startswith("State:")), "")
    return "Z" not in state_line.split()[1:2]


class EmbeddedServer:
    """Base class: subclasses supply the command line and a real readiness check."""

    name: str = ""
    env_var: str = ""

    def __init__(self, root: Path | None = None) -> None:
        """`root` holds the server's files; by default the run folder (`run_dir()`)."""
        self.root = root

    @property
    def base_dir(self) -> Path:
        return self.root or run_dir()

    @property
    def home(self) -> Path:
        return self.base_dir / self.name

    @property
    def state_file(self) -> Path:
        return self.base_dir / f"{self.name}.json"

    @property
    def log_file(self) -> Path:
        return self.home / "server.log"

    # -- primitives for subclasses ---------------------------------------------------------
    def binary(self) -> Path:
        raise NotImplementedError

    def prepare(self) -> None:
        """Create on-disk state before the first start (no-op by default)."""

    def command(self, port: int) -> list[str]:
        raise NotImplementedError

    def url_for(self, port: int) -> str:
        raise NotImplementedError

    def ping(self, url: str) -> None:
        """Open a real client connection; raise on failure."""
        raise NotImplementedError

    def after_start(self, url: str) -> None:
        """Run once the server answers (create databases, ...); no-op by default."""

    def popen_kwargs(self) -> dict:
        return {}

    def stop_signal(self) -> int:
        return signal.SIGTERM

    # -- lifecycle ----------------------------------------------------------------------------
    def read_state(self) -> ServiceState | None:
        try:
            return ServiceState(**json.loads(self.state_file.read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def healthy(self) -> bool:
        state = self.read_state()
        if state is None or not pid_alive(state.pid):
            return False
        try:
            self.ping(state.url)
        except Exception:  # any failure to connect means "not healthy"
            return False
        return True

    def start(self, port: int | None = None) -> ServiceState:
        """Start the server unless a healthy one is already running; return its state.

        `port` pins the port (a restart keeps its clients' URL); by default a free one.
        """
        state = self.read_state()
        if state and self.healthy():
            return state
        process, state = self.launch(port)
        self._wait_ready(process, state.url, READY_TIMEOUT)
        self.after_start(state.url)
        return state

    def launch(self, port: int | None = None) -> tuple[subprocess.Popen, ServiceState]:
        """Spawn the server and record its state, without waiting for it to answer.

        `start` waits; a cluster launches all its nodes first, since none answers alone.
        """
        if self.read_state():
            self.stop()
        binary = self.binary()
        if not binary.exists():
            raise ServiceError(
                f"{self.name}: binary {binary} not found; run `make install` "
                f"or set {self.env_var} to use a running server"
            )
        self.home.mkdir(parents=True, exist_ok=True)
        self.prepare()
        port = port or free_port()
        url = self.url_for(port)
        with open(self.log_file, "ab") as log:
            process = subprocess.Popen(
                self.command(port),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                **self.popen_kwargs(),
            )
        state = ServiceState(pid=process.pid, port=port, url=url)
        self.state_file.write_text(json.dumps(asdict(state)))
        return process, state

    def wait_ready(self, process: subprocess.Popen, timeout: float = READY_TIMEOUT) -> None:
        """Wait until a launched server answers (see `launch`), then run `after_start`."""
        state = self.read_state()
        if state is None:
            raise ServiceError(f"{self.name} exited at start:\n{self.log_tail()}")
        self._wait_ready(process, state.url, timeout)
        self.after_start(state.url)

    def _wait_ready(self, process: subprocess.Popen, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while True:  # asked at least once: a cluster's later nodes may get no time of their own
            if process.poll() is not None:
                self.state_file.unlink(missing_ok=True)
                raise ServiceError(f"{self.name} exited at start:\n{self.log_tail()}")
            try:
                self.ping(url)
                return
            except Exception as exc:  # not ready yet: keep polling until the deadline
                last_error = exc
            if time.monotonic() >= deadline:
                break
            time.sleep(POLL_INTERVAL)
        self.stop()
        raise ServiceError(
            f"{self.name} not ready after {timeout:.0f}s ({last_error}):\n{self.log_tail()}"
        )

    def stop(self) -> bool:
        """Stop the server if it runs; return True if a process was stopped."""
        state = self.read_state()
        self.state_file.unlink(missing_ok=True)
        if state is None or not pid_alive(state.pid):
            return False
        _signal(state.pid, self.stop_signal())
        deadline = time.monotonic() + STOP_TIMEOUT
        while pid_alive(state.pid) and time.monotonic() < deadline:
            time.sleep(POLL_INTERVAL)
        if pid_alive(state.pid):
            _signal(state.pid, signal.SIGKILL)
        return True

    def purge(self) -> bool:
        """Stop the server and delete its data; return True if a process was stopped."""
        stopped = self.stop()
        shutil.rmtree(self.home, ignore_errors=True)
        return stopped

    def restart(self) -> ServiceState:
        """Stop the running server and start it again on the same port, keeping its data."""
        state = self.read_state()
        if state is None:
            raise ServiceError(f"{self.name} is not running under {self.state_file.parent}")
        self.stop()
        return self.start(port=state.port)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
