"""`ami bench convoy`: do concurrent result transactions of one job wait on each other?

One job; `--tasks` OS processes, forked after Django is set up, each with its own database
connection, released together by a barrier, each saving its share of the job's results in
batches of `--batch`. A sampler on its own connection (`ami_lab.bench.lock_sampler`)
records every lock-waiting episode meanwhile. Modes:
- `new`: the product's path, `save_batch` then `fold_increments` (the DB part of the
  `save_results` task; NATS acks and log lines left out, they take no database lock);
- `before`: the design before increments: the same batch transaction (claim, inserts), but
  every result also adds itself to the job's stage rows inside it (`_RECORD_RESULT_SQL`
  below, from git history), so the stage rows stay locked until the batch commits.
"""

from __future__ import annotations

import json
import multiprocessing
import time
import traceback
from queue import Empty

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, connections, transaction

from ami.jobs.locking import fold_increments
from ami.jobs.models import JobStage
from ami.jobs.states import JobStatus, StageKey, StageStatus, TaskState
from ami.ml.orchestration.finish import finish_if_complete
from ami.ml.orchestration.results import algorithm_ids, insert_detections, save_batch
from ami.ml.schemas import PipelineResult
from ami_lab.bench.lock_sampler import LockSampler, django_conninfo, wait_summary
from ami_lab.bench.result_jobs import bench_project, result_dict, start_job
from ami_lab.processes import poll_until

PROJECT = "Benchmark: convoy"
LABELS = ("moth", "beetle", "fly", "wasp")
START_TIMEOUT = 120.0  # seconds for every child to reach the barrier
STOP_GRACE = 10.0  # seconds a child gets after SIGTERM before SIGKILL

# The old design (git show e95e392^:ami/jobs/locking.py): one image's task moves out of
# PENDING and, in the same statement, the job's `process` and `results` stage rows are
# counted up; the stage rows stay locked until the result's transaction commits.
_RECORD_RESULT_SQL = """
WITH moved AS (
    UPDATE jobs_imagetask AS t
       SET state = %(state)s, error = %(error)s, updated_at = now()
     WHERE t.job_id = %(job_id)s AND t.source_image_id = %(image_id)s AND t.state = %(pending)s
       AND EXISTS (SELECT 1 FROM jobs_job AS j WHERE j.id = %(job_id)s AND j.status = %(started)s)
 RETURNING t.id
), locked AS (
    SELECT s.id FROM jobs_jobstage AS s
     WHERE s.job_id = %(job_id)s AND s.key IN (%(process)s, %(results)s)
       AND EXISTS (SELECT 1 FROM moved)
     ORDER BY s.id
       FOR NO KEY UPDATE
)
UPDATE jobs_jobstage AS s
   SET processed = s.processed + %(done)s,
       failed = s.failed + %(failed)s,
       detections = s.detections + %(detections)s,
       classifications = s.classifications + %(classifications)s,
       progress = CASE WHEN s.total > 0
                       THEN LEAST(1.0, (s.processed + s.failed + 1)::float / s.total)
                       ELSE 1.0 END,
       status = CASE WHEN s.processed + s.failed + 1 >= s.total
                     THEN %(stage_done)s ELSE %(stage_started)s END,
       updated_at = now()
  FROM locked
 WHERE s.id = locked.id
RETURNING s.key, s.total, s.processed, s.failed
"""


class Command(BaseCommand):
    help = "Measure lock waits on the job and stage rows under concurrent result tasks."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--mode", choices=("new", "before"), default="new")
        parser.add_argument("--tasks", type=int, default=125, help="concurrent processes")
        parser.add_argument("--images", type=int, default=125 * 16)
        parser.add_argument("--batch", type=int, default=16, help="results per transaction")
        parser.add_argument("--interval", type=float, default=3.0, help="sampling ms")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args: object, **options: object) -> None:
        tasks, images, batch = int(options["tasks"]), int(options["images"]), int(options["batch"])
        if min(tasks, images, batch) < 1:
            raise CommandError("--tasks, --images and --batch must be at least 1")
        project = bench_project(PROJECT, [f"convoy/{i:05d}.png" for i in range(images)])
        job = start_job(project, images)
        results = synthetic_results(job.pk)
        batches = [results[i : i + batch] for i in range(0, len(results), batch)]
        shares = [batches[i::tasks] for i in range(tasks)]
        sampler = LockSampler(django_conninfo(), float(options["interval"]) / 1000)
        try:
            outcome = run_tasks(job.pk, shares, str(options["mode"]), sampler)
        finally:
            sampler.stop()
        figures = report(job.pk, results, outcome, sampler, options)
        finish_if_complete(job.pk)
        self.stdout.write(json.dumps(figures) if options["json"] else describe(figures))
        if not figures["exact"]:
            raise CommandError("the stage counters differ from what was sent")


def synthetic_results(job_id: int) -> list[dict]:
    """One result per image of the job: 3 or 4 boxes (3.5 on average), one label each."""
    from ami.jobs.models import ImageTask

    image_ids = ImageTask.objects.filter(job_id=job_id).order_by("source_image_id")
    results = []
    for n, image_id in enumerate(image_ids.values_list("source_image_id", flat=True)):
        boxes = [
            ((10.0 * k, 10.0 * k, 10.0 * k + 8, 10.0 * k + 8), LABELS[(n + k) % len(LABELS)])
            for k in range(3 + n % 2)
        ]
        results.append(result_dict(image_id, f"bench.convoy.{n}", boxes))
    return results


def run_tasks(job_id: int, shares: list[list[list[dict]]], mode: str, sampler: LockSampler) -> dict:
    """Run one forked process per share, released together; their totals and wall time.

    The sampler's thread starts after the forks: a fork copies no running thread, but it
    copies the locks a running thread may hold at that moment.
    """
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(len(shares) + 1)
    queue = context.Queue()
    connections.close_all()  # each child opens its own connection
    children = [
        context.Process(target=_child, args=(job_id, share, mode, barrier, queue), daemon=True)
        for share in shares
    ]
    try:
        for child in children:
            child.start()
        sampler.start()
        barrier.wait(timeout=START_TIMEOUT)
        reports = [_next_report(queue, children) for _ in children]
    finally:
        _stop_all(children)
    errors = [r["error"] for r in reports if r.get("error")]
    if errors:
        raise CommandError(f"{len(errors)} task(s) failed; the first:\n{errors[0]}")
    # From the children's clocks (CLOCK_MONOTONIC is one clock for every process): with 125
    # runnable processes on 2 cores, this process may run long after the barrier opened.
    return {
        "wall_s": max(r["ended"] for r in reports) - min(r["started"] for r in reports),
        "batches": sum(r["batches"] for r in reports),
        "statements": sum(r["statements"] for r in reports),
    }


def _next_report(queue, children: list) -> dict:
    """The next child's report; give up if a child died without one."""

    def died() -> str | None:
        dead = [c for c in children if c.exitcode not in (None, 0)]
        return f"a task process exited with {dead[0].exitcode}" if dead else None

    def report() -> dict | None:
        try:
            return queue.get(timeout=0.05)
        except Empty:
            return None

    return poll_until(
        report,
        timeout=600,
        what="a result task's report",
        interval=0.01,
        give_up=died,
    )


def _stop_all(children: list) -> None:
    """Every child ends here, finished or not: SIGTERM, then SIGKILL after a grace."""
    for child in children:
        if child.is_alive():
            child.terminate()
    deadline = time.monotonic() + STOP_GRACE
    for child in children:
        if child.pid is not None:
            child.join(max(0.0, deadline - time.monotonic()))
        if child.is_alive():
            child.kill()
            child.join()


def _child(job_id: int, share: list[list[dict]], mode: str, barrier, queue) -> None:
    statements = 0

    def count(execute, sql, params, many, context):
        nonlocal statements
        statements += 1
        return execute(sql, params, many, context)

    try:
        batches = [[PipelineResult.model_validate(r) for r in batch] for batch in share]
        connection.ensure_connection()
        barrier.wait(timeout=START_TIMEOUT)
        started = time.monotonic()
        with connection.execute_wrapper(count):
            for batch in batches:
                if mode == "new":
                    save_batch(job_id, batch)
                    fold_increments(job_id)
                else:
                    save_batch_before(job_id, batch)
        ended = time.monotonic()
        queue.put(
            {"batches": len(batches), "statements": statements, "started": started, "ended": ended}
        )
    except BaseException:
        queue.put({"batches": 0, "statements": statements, "error": traceback.format_exc()})
    finally:
        connection.close()


def save_batch_before(job_id: int, batch: list[PipelineResult]) -> None:
    """The old design's transaction: insert, then count each result in the stage rows."""
    algorithms = algorithm_ids(set().union(*(r.algorithm_keys() for r in batch)))
    with transaction.atomic(), connection.cursor() as cursor:
        insert_detections(batch, algorithms)
        for result in batch:
            labels = sum(len(d.classifications) for d in result.detections)
            cursor.execute(_RECORD_RESULT_SQL, _record_params(job_id, result, labels))


def _record_params(job_id: int, result: PipelineResult, labels: int) -> dict:
    return {
        "job_id": job_id,
        "image_id": result.image_id,
        "state": TaskState.DONE,
        "error": "",
        "pending": TaskState.PENDING,
        "started": JobStatus.STARTED,
        "process": StageKey.PROCESS,
        "results": StageKey.RESULTS,
        "done": 1,
        "failed": 0,
        "detections": len(result.detections),
        "classifications": labels,
        "stage_done": StageStatus.SUCCESS,
        "stage_started": StageStatus.STARTED,
    }


def report(job_id: int, results: list[dict], outcome: dict, sampler: LockSampler, options) -> dict:
    """The run's figures: counts, whether the counters are exact, and the lock waits."""
    fold_increments(job_id, wait=True)  # what the last folders left (the beat's job)
    stage = JobStage.objects.get(job_id=job_id, key=StageKey.PROCESS)
    sent = {
        "processed": len(results),
        "detections": sum(len(r["detections"]) for r in results),
        "classifications": sum(len(d["classifications"]) for r in results for d in r["detections"]),
    }
    stored = {key: getattr(stage, key) for key in sent}
    episodes = sampler.episodes()
    relations: dict[str, int] = {}
    for episode in episodes:
        for name in episode.relations or {"(transaction id only)"}:
            relations[name] = relations.get(name, 0) + 1
    return {
        "mode": options["mode"],
        "job_id": job_id,
        "tasks": int(options["tasks"]),
        "images": len(results),
        "batch": int(options["batch"]),
        "batches": outcome["batches"],
        "statements": outcome["statements"],
        "statements_per_batch": round(outcome["statements"] / max(1, outcome["batches"]), 2),
        "wall_s": round(outcome["wall_s"], 3),
        "exact": stored == sent,
        "sent": sent,
        "stored": stored,
        "samples": sampler.samples,
        "job_rows": wait_summary([e for e in episodes if e.on_job_rows]),
        "any_rows": wait_summary(episodes),
        "waits_by_relation": relations,
    }


def describe(f: dict) -> str:
    """The figures as a few human lines."""
    job, any_ = f["job_rows"], f["any_rows"]
    return "\n".join(
        [
            f"mode {f['mode']}: {f['tasks']} tasks, {f['images']} images in {f['batches']}"
            f" batches of {f['batch']}, {f['statements']} statements"
            f" ({f['statements_per_batch']} per batch), wall {f['wall_s']:.2f}s",
            f"counters exact: {str(f['exact']).lower()} (stored {f['stored']})",
            f"lock waits on job/stage rows: {job['episodes']} episodes, p50 {job['p50_ms']} ms,"
            f" p99 {job['p99_ms']} ms, max {job['max_ms']} ms",
            f"lock waits on any row: {any_['episodes']} episodes, p50 {any_['p50_ms']} ms,"
            f" p99 {any_['p99_ms']} ms, max {any_['max_ms']} ms"
            f" ({f['samples']} samples; by relation {f['waits_by_relation']})",
        ]
    )
