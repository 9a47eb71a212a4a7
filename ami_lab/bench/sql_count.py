"""SQL statements the save path executes per result, counted in-process.

`pg_stat_statements` would count inside the server, but it must be preloaded
(`shared_preload_libraries`), which means restarting the embedded server with another
configuration for every checkout that shares it, and its counts mix every session of the
database. So the bench runs the real task body, `process_batch`, in its own process for a
separate small job of the same shape (same images, batch size and detections), under
`CaptureQueriesContext` on the `default` connection: every statement the save, fold,
heartbeat, pending check and finish send, BEGIN and COMMIT included (each is a round trip:
a batch's save and its fold are two transactions). Job log lines go to
the `logs` connection through the log backend (buffered: a COPY from a flush thread every
so often, whose connection is not captured); those captured on `logs` are reported apart.
"""

from __future__ import annotations

import statistics

from django.db import connections
from django.test.utils import CaptureQueriesContext

from ami.main.models import Project
from ami.ml.orchestration.results import process_batch
from ami.ml.schemas import PipelineResult
from ami_lab.bench.result_jobs import reserved_results, start_job

BATCHES = 4  # a job of this many batches: the middle ones are the steady state


def count_statements(project: Project, batch: int) -> dict:
    """Run a small job of BATCHES batches in-process; statements per batch and per result."""
    job = start_job(project, BATCHES * batch)
    results = reserved_results(job.pk)
    per_batch, per_batch_logs = [], []
    for start in range(0, len(results), batch):
        chunk = [PipelineResult.model_validate(r) for r in results[start : start + batch]]
        with (
            CaptureQueriesContext(connections["default"]) as saved,
            CaptureQueriesContext(connections["logs"]) as logged,
        ):
            process_batch(job.pk, chunk)
        per_batch.append(len(saved))
        per_batch_logs.append(len(logged))
    steady = statistics.median(per_batch[:-1] or per_batch)  # the last batch also finishes
    return {
        "job_id": job.pk,
        "batch": batch,
        "statements_per_batch": per_batch,
        "log_statements_per_batch": per_batch_logs,
        "per_result": round(steady / batch, 2),
        "per_result_with_finish": round(sum(per_batch) / len(results), 2),
    }
