"""Per-process facts read on every line, kept current across fork without a syscall each time."""

from __future__ import annotations

import os
import socket
import threading

HOSTNAME = socket.gethostname()
_pid = os.getpid()
_task = threading.local()


def current_pid() -> int:
    """This process's id (updated in a forked child)."""
    return _pid


def _after_fork_in_child() -> None:
    global _pid
    _pid = os.getpid()
    _task.__dict__.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def set_current_task_id(task_id: str | None) -> None:
    """Record the Celery task this thread runs (from task_prerun / task_postrun)."""
    _task.id = task_id


def current_task_id() -> str | None:
    return getattr(_task, "id", None)
