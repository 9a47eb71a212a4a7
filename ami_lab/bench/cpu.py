"""CPU time of a process tree (a Celery worker: its main process and its pool children).

Read at the start and at the end of a run, the difference is the CPU the tree spent on the
run. A child that exited in between takes its CPU time with it (psutil cannot read a gone
process): the bench's workers keep their pool processes for the whole run.
"""

from __future__ import annotations

import psutil


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` and every live descendant."""
    root = psutil.Process(pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def tree_size(pid: int) -> int:
    """How many processes the tree has (the main process included)."""
    return 1 + len(psutil.Process(pid).children(recursive=True))
