"""Run the web app in a real uvicorn process: for the stream and browser tests, and benchmarks."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from ami_lab.processes import WaitTimeout, free_port, poll_until, web_command

STARTUP_TIMEOUT = 30.0  # seconds


@contextmanager
def uvicorn_server(env: dict[str, str], log_path: Path) -> Iterator[tuple[str, int]]:
    """Start uvicorn on a free port; yield (base URL, pid); stop it at the end."""
    port = free_port()
    # A test process may allow sync ORM calls beside its own event loop; the server must not.
    env = {name: value for name, value in env.items() if name != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(web_command(port), env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(process, base, log_path)
            yield base, process.pid
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(process: subprocess.Popen, base: str, log_path: Path) -> None:
    def answers() -> bool:
        try:
            httpx.get(f"{base}/api/", timeout=1.0)
        except httpx.TransportError:
            return False
        return True

    def exited() -> str | None:
        return "uvicorn exited" if process.poll() is not None else None

    try:
        poll_until(answers, timeout=STARTUP_TIMEOUT, what="uvicorn", interval=0.1, give_up=exited)
    except WaitTimeout as exc:
        raise RuntimeError(f"{exc}:\n{log_path.read_text()}") from exc
