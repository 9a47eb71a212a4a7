"""`ami bench partitions`: JobLog partitioned by job start, read and pruned at 1M lines and at N.

Makes `--days` days of finished jobs (`--jobs-per-day` a day, one partition a day) and loads
N log lines (10M by default) spread evenly over them with COPY, in passes, so that every
checkpoint (1M, then N) holds lines in every job. At each checkpoint it reports:

- the newest 100 lines of a job of the last day: planning and execution time on the server
  (EXPLAIN ANALYZE, median of repeats) and the partitions the plan touches;
- the same page over HTTP (uvicorn), and a deep cursor page (10% from the job's start);
- a retention pass that drops the oldest day's partition (time, WAL written), beside the
  way before partitions, a batched DELETE of the next day's lines through the BRIN index
  (`retention.prune_older_than`), in the same run;
- a retention pass with nothing to drop.

Lines are stamped with their job's start plus a few seconds, as a real job's would be.
100M lines are a run for bigger hardware: `--lines 100000000`.
"""

from __future__ import annotations

import json
import logging
import os
import random
import statistics
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from rich.console import Console

from ami.jobs import log_partitions
from ami.jobs.logging import retention
from ami.jobs.models import Job, JobLog
from ami.jobs.states import JobStatus
from ami.main.models import Project
from ami_lab.bench.api import BENCH_USER, session_cookies, synthetic_line, timed
from ami_lab.live_server import uvicorn_server

PROJECT = "bench-partitions"
REPEATS = 15
COPY_COLUMNS = "job_id, job_partition_key, level, message, context, created_at"
console = Console()


@dataclass(frozen=True)
class Layout:
    days: int
    jobs_per_day: int


def checkpoints(lines: int, first: int, layout: Layout) -> list[int]:
    """The line counts measured at; each checkpoint retires two days (one dropped, one
    deleted), and the last day must stay."""
    points = sorted({min(first, lines), lines})
    if layout.days < 2 * len(points) + 1:
        raise CommandError(
            f"--days must be at least {2 * len(points) + 1} for {len(points)} checkpoints"
        )
    return points


def make_jobs(layout: Layout, now: datetime) -> list[Job]:
    """One project of finished jobs, `jobs_per_day` started on each of the last `days` days
    (oldest first), and their partitions."""
    project, _ = Project.objects.get_or_create(name=PROJECT)
    Job.objects.filter(project=project).delete()
    jobs = []
    for day in range(layout.days, 0, -1):
        for n in range(layout.jobs_per_day):
            started = now - timedelta(days=day) + timedelta(minutes=n)
            jobs.append(
                Job(
                    project=project, name=f"day -{day} #{n}", status=JobStatus.SUCCESS,
                    log_partition_key=started, started_at=started,
                    finished_at=started + timedelta(hours=1),
                )
            )  # fmt: skip
    jobs = Job.objects.bulk_create(jobs)
    # Partitions older than these jobs (the empty legacy one, earlier runs') go first.
    log_partitions.drop_expired(timedelta(days=layout.days + 1), now=now)
    log_partitions.ensure({job.log_partition_key for job in jobs}, connection)
    return jobs


def load(jobs: list[Job], lines: int, first_line: int) -> float:
    """COPY `lines` more lines, the same number into every job; return the seconds taken."""
    per_job = max(1, lines // len(jobs))
    rng = random.Random(first_line)
    started = time.perf_counter()
    with psycopg.connect(settings.DATABASE_URL, autocommit=True) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY jobs_joblog ({COPY_COLUMNS}) FROM STDIN") as copy:
            for job in jobs:
                for i in range(first_line, first_line + per_job):
                    level, message = synthetic_line(rng, i)
                    stamp = job.log_partition_key + timedelta(milliseconds=i)
                    row = (job.pk, job.log_partition_key, level, message, f'{{"image_id": {i}}}')
                    copy.write_row((*row, stamp))
        cur.execute("ANALYZE jobs_joblog")
    return time.perf_counter() - started


def server_side_newest_page(job: Job) -> dict:
    """EXPLAIN ANALYZE of the newest-100 query the API runs: times and partitions touched."""
    query = JobLog.objects.of_job(job.pk).order_by("-txid", "-id")[:100]
    sql, params = query.query.sql_with_params()
    planning, execution, touched = [], [], set()
    with connection.cursor() as cursor:
        for _ in range(REPEATS):
            cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
            plan = cursor.fetchone()[0][0]
            planning.append(plan["Planning Time"])
            execution.append(plan["Execution Time"])
            touched |= relations_in(plan["Plan"])
    return {
        "planning_ms_p50": round(statistics.median(planning), 3),
        "execution_ms_p50": round(statistics.median(execution), 3),
        "partitions_touched": sorted(touched),
    }


def relations_in(node: dict) -> set[str]:
    found = {node["Relation Name"]} if "Relation Name" in node else set()
    for child in node.get("Plans", []):
        found |= relations_in(child)
    return found


def http_pages(client: httpx.Client, job: Job) -> dict:
    positions = JobLog.objects.of_job(job.pk).order_by("txid", "id").values_list("txid", "id")
    deep_txid, deep_id = positions[positions.count() // 10]
    base = f"/api/jobs/{job.pk}/logs?limit=100"

    def get(query: str):
        return lambda: client.get(base + query).raise_for_status()

    return {
        "newest 100 (HTTP)": timed(get(""), REPEATS),
        "deep page (HTTP)": timed(get(f"&before={deep_txid}.{deep_id}"), REPEATS),
    }


def wal_bytes_and_ms(action) -> tuple[object, float, int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_insert_lsn()")
        before = cursor.fetchone()[0]
        started = time.perf_counter()
        result = action()
        ms = (time.perf_counter() - started) * 1000
        cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s)", [before])
        return result, ms, int(cursor.fetchone()[0])


def retention_figures(now: datetime, oldest_day: int) -> dict:
    """Drop the partition of the day `oldest_day` days ago (the oldest one left); then, the
    old way, DELETE the lines of the day after it; then a pass with nothing to drop. The
    partition the DELETE emptied is dropped last, untimed, so the next checkpoint's drop is
    again one day."""
    window = timedelta(days=oldest_day - 1)
    oldest = log_partitions.partitions(connection)[0]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {oldest.name}")
        rows_in_day = cursor.fetchone()[0]
    dropped, drop_ms, drop_wal = wal_bytes_and_ms(
        lambda: log_partitions.drop_expired(window, now=now)
    )
    day_after = now - timedelta(days=oldest_day - 2)  # lines before it: the next day's
    deleted, delete_ms, delete_wal = wal_bytes_and_ms(
        lambda: retention.prune_older_than(
            datetime.now(UTC) - day_after, retention.DEFAULT_BATCH_SIZE
        )
    )
    empty, empty_ms, _ = wal_bytes_and_ms(lambda: log_partitions.drop_expired(window, now=now))
    log_partitions.drop_expired(timedelta(days=oldest_day - 2), now=now)
    return {
        "drop_one_day": {
            "partitions": dropped.dropped, "rows": rows_in_day, "ms": round(drop_ms, 1),
            "wal_kB": round(drop_wal / 1024, 1), "steps": dropped.timings,
        },
        "delete_one_day_batched": {
            "rows": deleted, "ms": round(delete_ms, 1), "wal_kB": round(delete_wal / 1024, 1),
        },
        "empty_pass": {"dropped": empty.dropped, "ms": round(empty_ms, 1)},
    }  # fmt: skip


def checkpoint(client: httpx.Client, target: Job, now: datetime, oldest_day: int) -> dict:
    parts = log_partitions.partitions(connection)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM jobs_joblog")
        lines = cursor.fetchone()[0]
        cursor.execute(
            "SELECT sum(pg_table_size(c.oid)), sum(pg_indexes_size(c.oid)) FROM pg_class c "
            "WHERE c.relname = ANY(%s)",
            [[p.name for p in parts]],
        )
        heap, indexes = cursor.fetchone()
    return {
        "lines": lines,
        "bytes_per_line": {"heap": round(heap / lines), "indexes": round(indexes / lines)},
        "partitions": len(log_partitions.partitions(connection)),
        "newest_100_server": server_side_newest_page(target),
        **http_pages(client, target),
        "retention": retention_figures(now, oldest_day),
    }


def run(lines: int, first_checkpoint: int, layout: Layout) -> dict:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    points = checkpoints(lines, first_checkpoint, layout)
    call_command("migrate", verbosity=0)
    now = datetime.now(UTC)
    jobs = make_jobs(layout, now)
    target = jobs[-1]  # started on the last day
    user, _ = get_user_model().objects.get_or_create(username=BENCH_USER)
    target.project.members.add(user)
    figures: dict = {"layout": asdict(layout), "checkpoints": []}
    env = {**os.environ, "DATABASE_URL": settings.DATABASE_URL}
    log_path = Path(settings.MEDIA_ROOT).parent / "bench-partitions-uvicorn.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    loaded, load_seconds = 0, 0.0
    with (
        uvicorn_server(env, log_path) as (base, _pid),
        httpx.Client(base_url=base, cookies=session_cookies(target), timeout=300) as client,
    ):
        for step, goal in enumerate(points):
            # The jobs of the days the previous checkpoints' retention left.
            first_day = now - timedelta(days=layout.days - 2 * step)
            live = [job for job in jobs if job.log_partition_key >= first_day]
            load_seconds += load(live, goal - loaded, loaded)
            loaded = goal
            console.print(f"loaded {goal:,} lines ({load_seconds:.0f} s so far)")
            figures["checkpoints"].append(
                checkpoint(client, target, now, oldest_day=layout.days - 2 * step)
            )
    figures["load_seconds"] = round(load_seconds, 1)
    return figures


def print_figures(figures: dict) -> None:
    for point in figures["checkpoints"]:
        server = point["newest_100_server"]
        drop = point["retention"]["drop_one_day"]
        delete = point["retention"]["delete_one_day_batched"]
        console.print(
            f"[bold]{point['lines']:,} lines, {point['partitions']} partitions[/bold], "
            f"bytes per line {point['bytes_per_line']}\n"
            f"  newest 100, server: plan {server['planning_ms_p50']} ms + run "
            f"{server['execution_ms_p50']} ms, partitions touched {server['partitions_touched']}\n"
            f"  newest 100, HTTP p50 {point['newest 100 (HTTP)']['p50_ms']} ms; deep page "
            f"p50 {point['deep page (HTTP)']['p50_ms']} ms\n"
            f"  drop one day ({drop['rows']:,} rows): {drop['ms']} ms {drop['steps']}, "
            f"{drop['wal_kB']} kB WAL"
            f" | DELETE one day ({delete['rows']:,} rows): {delete['ms']} ms, "
            f"{delete['wal_kB']} kB WAL\n"
            f"  empty retention pass: {point['retention']['empty_pass']['ms']} ms"
        )
    print(json.dumps(figures, indent=2))


class Command(BaseCommand):
    help = "Benchmark JobLog partitions: newest page, deep page and retention at 1M and N lines."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--lines", type=int, default=10_000_000, help="lines at the end")
        parser.add_argument("--checkpoint", type=int, default=1_000_000, help="first checkpoint")
        # 100 days: the default retention's span (90 days), so 10M lines make days of 100k
        # lines, the size of a busy day in the trials.
        parser.add_argument("--days", type=int, default=100, help="days of jobs (>= 5)")
        parser.add_argument("--jobs-per-day", type=int, default=20)
        parser.add_argument("--json", dest="json_path", help="also write the figures here")

    def handle(self, *args, lines, checkpoint, days, jobs_per_day, json_path, **options) -> None:
        figures = run(lines, checkpoint, Layout(days, jobs_per_day))
        print_figures(figures)
        if json_path:
            Path(json_path).write_text(json.dumps(figures, indent=2))
