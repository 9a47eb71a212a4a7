"""The system's processes as the lab starts them: one home for each command line, and for
waiting on a port or a condition.

Used by the demo stack, the load test, the benchmarks and the tests, so each starts the web
server and the Celery workers the same way.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

HOST = "127.0.0.1"
CELERY_APP = "ami.celery"
# Lab workers talk to nobody but the broker: no gossip, mingle or heartbeat events.
CELERY_QUIET = ("--without-gossip", "--without-mingle", "--without-heartbeat")


class WaitTimeout(TimeoutError):
    """What was awaited did not happen in time."""


def free_port() -> int:
    """Ask the kernel for a free loopback port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def port_answers(port: int, timeout: float = 1.0) -> bool:
    """True if something accepts a TCP connection on the loopback port."""
    try:
        socket.create_connection((HOST, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def web_command(port: int) -> list[str]:
    """The ASGI web server (API, pages, live log stream) on a loopback port."""
    return [
        sys.executable, "-m", "uvicorn", "ami.asgi:application",
        "--host", HOST, "--port", str(port), "--no-access-log",
    ]  # fmt: skip


def celery_worker_command(
    queues: str, concurrency: int, name: str, *, app: str = CELERY_APP, loglevel: str = "INFO"
) -> list[str]:
    """A Celery worker on `queues` ("jobs", "ml_results", or both comma-separated)."""
    return [
        sys.executable, "-m", "celery", "-A", app, "worker", "-Q", queues,
        "-c", str(concurrency), "-n", f"{name}@%h", *CELERY_QUIET, "--loglevel", loglevel,
    ]  # fmt: skip


def celery_beat_command(*, app: str = CELERY_APP, schedule_file: str | None = None) -> list[str]:
    schedule = ["-s", schedule_file] if schedule_file else []
    return [sys.executable, "-m", "celery", "-A", app, "beat", *schedule, "--loglevel", "INFO"]


def poll_until(
    condition: Callable[[], T],
    *,
    timeout: float,
    what: str,
    interval: float = 0.2,
    give_up: Callable[[], str | None] | None = None,
) -> T:
    """Call `condition` until it returns something truthy, and return that.

    Raises `WaitTimeout` naming `what` after `timeout` seconds, or at once with the reason
    `give_up` returns (a child process that died, say: waiting longer would be pointless).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        reason = give_up() if give_up else None
        if reason:
            raise WaitTimeout(f"gave up waiting for {what}: {reason}")
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"{what}: not after {timeout:g}s")
        time.sleep(interval)
