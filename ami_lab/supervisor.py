"""Run a set of child processes and stop all of them, their own children included.

Each child gets its own session (so its own process group): Ctrl-C in the terminal reaches
only the supervising process, which then stops the children in order, each group with
SIGTERM first and SIGKILL for whatever is left after a grace period. A Celery worker's pool
processes are in their parent's group, so they go with it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
STOP_GRACE = 20.0  # seconds a group gets to exit after SIGTERM
POLL_INTERVAL = 0.1  # seconds


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    log_path: Path

    @property
    def pgid(self) -> int:
        return self.process.pid


def group_alive(pgid: int) -> bool:
    """True while any process of the group still runs."""
    return bool(group_members(pgid))


def group_members(pgid: int) -> list[int]:
    """Running pids whose process group is `pgid` (read from /proc; zombies are not running:
    an orphan's zombie waits for whoever adopted it to reap it)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


class Supervisor:
    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self.log_dir = log_dir
        self.env = env
        self.children: list[Child] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Child:
        """Start `argv` in its own session; `env` adds to the supervisor's environment."""
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**self.env, **(env or {})},
                start_new_session=True,
                preexec_fn=_die_with_supervisor,
            )
        child = Child(name, process, log_path)
        self.children.append(child)
        return child

    def exited(self) -> list[Child]:
        return [child for child in self.children if child.process.poll() is not None]

    def stop(self, names: list[str] | None = None, grace: float = STOP_GRACE) -> None:
        """SIGTERM each leader (all, or those named), wait, then SIGKILL what is left.

        Only the leader gets SIGTERM: a Celery worker then shuts its pool down warmly
        (running tasks finish, buffered log lines are flushed), which it cannot do if its
        pool processes are terminated under it. SIGKILL then goes to the whole group.
        """
        chosen = [c for c in self.children if names is None or c.name in names]
        for child in chosen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in chosen:
            while time.monotonic() < deadline and (
                child.process.poll() is None or group_alive(child.pgid)
            ):
                time.sleep(POLL_INTERVAL)
        for child in chosen:
            _signal_group(child.pgid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=5)
        self.children = [c for c in self.children if c not in chosen]

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _die_with_supervisor() -> None:
    """In the child before exec: get SIGTERM if the supervising process dies.

    A supervisor killed outright (SIGKILL, a test runner's timeout) cannot stop its
    children; the kernel then does it for them (Linux `PR_SET_PDEATHSIG`).
    """
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
