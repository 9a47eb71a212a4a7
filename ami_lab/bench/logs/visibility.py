"""Time from emit to visible: a line logged through a backend until its row is in JobLog.

Measured in the bench process, one line at a time on an otherwise idle job (no writers
running): the delay a user watching the log sees, not a throughput figure. `sync` is
visible when `emit` returns; `buffered` and `redis` after their drain interval.
"""

from __future__ import annotations

import logging
import statistics
import time
import uuid

from rich.console import Console

from ami.jobs.logging.handler import build_backend
from ami.jobs.models import Job, JobLog
from ami.main.models import Project

VISIBILITY_MODES = ("sync", "buffered", "redis")
SAMPLES = 20
GAP = 0.05  # seconds between samples
POLL = 0.001  # seconds between looks at JobLog
GIVE_UP = 10.0  # seconds


def emit_to_visible(mode: str, project_name: str, samples: int = SAMPLES) -> list[float]:
    """Milliseconds from `emit` to the row being readable, for `samples` lines."""
    project, _ = Project.objects.get_or_create(name=project_name)
    job = Job.objects.create(project=project, name=f"bench visibility {mode}")
    backend = build_backend(mode, dual_write=False)
    delays = []
    try:
        for _ in range(samples):
            message = f"visible? {uuid.uuid4().hex}"
            began = time.perf_counter()
            backend.emit(job.pk, logging.INFO, message, {})
            deadline = began + GIVE_UP
            while not JobLog.objects.filter(job_id=job.pk, message=message).exists():
                if time.perf_counter() > deadline:
                    break
                time.sleep(POLL)
            delays.append((time.perf_counter() - began) * 1000)
            time.sleep(GAP)
    finally:
        backend.close(10)
        job.delete()
    return delays


def report_visibility(modes: list[str], project_name: str, console: Console) -> None:
    """Print emit-to-visible p50/max (ms) for the modes that have it."""
    for mode in [m for m in modes if m in VISIBILITY_MODES]:
        delays = emit_to_visible(mode, project_name)
        console.print(
            f"{mode}: emit to visible in JobLog p50 {statistics.median(delays):.1f} ms, "
            f"max {max(delays):.1f} ms ({len(delays)} lines, one at a time)"
        )
