"""The lab's process helpers: command lines, ports, polling with a deadline."""

from __future__ import annotations

import socket
import time

import pytest

from ami_lab.processes import (
    WaitTimeout,
    celery_worker_command,
    free_port,
    poll_until,
    port_answers,
    web_command,
)


def test_poll_until_returns_the_first_truthy_value():
    values = iter([None, 0, "", "ready"])
    assert poll_until(lambda: next(values), timeout=5, what="x", interval=0.001) == "ready"


def test_poll_until_names_what_it_waited_for_when_time_runs_out():
    started = time.monotonic()
    with pytest.raises(WaitTimeout, match="the moon: not after 0.2s"):
        poll_until(lambda: False, timeout=0.2, what="the moon", interval=0.01)
    assert 0.2 <= time.monotonic() - started < 2


def test_poll_until_gives_up_at_once_with_the_reason():
    started = time.monotonic()
    with pytest.raises(WaitTimeout, match="gave up waiting for web: it exited"):
        poll_until(lambda: False, timeout=60, what="web", give_up=lambda: "it exited")
    assert time.monotonic() - started < 1


def test_port_answers_only_while_something_listens():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert port_answers(port)
    assert not port_answers(port)
    assert not port_answers(free_port())


def test_command_lines_name_their_queue_port_and_worker():
    worker = celery_worker_command("ml_results", 8, "results-1")
    assert worker[worker.index("-Q") + 1] == "ml_results"
    assert worker[worker.index("-c") + 1] == "8"
    assert worker[worker.index("-n") + 1] == "results-1@%h"
    web = web_command(8123)
    assert "ami.asgi:application" in web and web[web.index("--port") + 1] == "8123"
