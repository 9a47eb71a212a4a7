"""`ami bench api`: the read path on a job with a million log lines, through a real server.

Measures, against uvicorn on the configured database: the newest page, deep cursor pages,
filtered pages, the log horizon query, a full streamed download (time and the server's peak
RSS), the time from a line's INSERT commit to its arrival in an SSE client (and in
Chromium, when it is installed), and the database transactions per second of 20 and of 200
idle streams. Streams are woken by NOTIFY (`ami.jobs.api.wakeups`); the figures say whether
the server's listener was connected. Prints a table and JSON; figures, not pass/fail.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import random
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from rich.console import Console
from rich.table import Table

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # a dev extra: the browser figure is skipped without it
    sync_playwright = None

from ami.jobs.api.horizon import log_horizon
from ami.jobs.api.wakeups import LISTENER_APP_SUFFIX
from ami.jobs.lifecycle import create_job
from ami.jobs.locking import transition
from ami.jobs.models import Job, JobLog
from ami.jobs.states import JobStatus
from ami.main.models import Project
from ami_lab.live_server import uvicorn_server

BENCH_USER, BENCH_PASSWORD = "bench-api", "bench-api-password"
JOB_NAME = "bench-api"
REPEATS = 15  # timed requests per figure
EMITS = 60  # lines timed from commit to SSE client
IDLE_STREAMS = (20, 200)  # open streams while idle load is measured
IDLE_SECONDS = 10.0  # measured window: two fallback polls of every stream
console = Console()


def session_cookies(job: Job) -> dict[str, str]:
    """A signed-in session: Basic auth would time a password hash on every request."""
    client = Client()
    client.force_login(job.project.members.get(username=BENCH_USER))
    return {"sessionid": client.cookies["sessionid"].value}


def ensure_job(lines: int) -> Job:
    """The benchmark job with at least `lines` lines, made with COPY when missing."""
    user, _ = get_user_model().objects.get_or_create(username=BENCH_USER)
    user.set_password(BENCH_PASSWORD)
    user.save()
    project, _ = Project.objects.get_or_create(name="bench-api")
    project.members.add(user)
    job = Job.objects.filter(project=project, name=JOB_NAME).first()
    if job is None:
        job = create_job(project, None, JOB_NAME)
        transition(job.pk, JobStatus.STARTED)
    have = JobLog.objects.filter(job=job).count()
    if have < lines:
        started = time.perf_counter()
        copy_lines(job, have, lines - have)
        console.print(f"COPY {lines - have:,} lines in {time.perf_counter() - started:.1f} s")
    return job


def copy_lines(job: Job, start: int, count: int) -> None:
    rng = random.Random(start)
    columns = "job_id, job_partition_key, level, message, context"
    with psycopg.connect(settings.DATABASE_URL, autocommit=True) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY jobs_joblog ({columns}) FROM STDIN") as copy:
            for i in range(start, start + count):
                level, message = synthetic_line(rng, i)
                context = json.dumps({"image_id": i})
                copy.write_row((job.pk, job.log_partition_key, level, message, context))
        cur.execute("ANALYZE jobs_joblog")


def synthetic_line(rng: random.Random, i: int) -> tuple[int, str]:
    roll = rng.random()
    if roll < 0.01:
        return 40, f"Failed to save results for image {i}: timeout after 30 s"
    if roll < 0.06:
        return 30, f"Image {i} retried (attempt {rng.randint(2, 5)})"
    return 20, f"Saved {rng.randint(0, 9)} detections for image {i} on worker w{i % 8}"


def timed(func: Callable[[], object], repeats: int = REPEATS) -> dict[str, float]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        func()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 2),
        "p95_ms": round(samples[int(0.95 * (len(samples) - 1))], 2),
        "max_ms": round(samples[-1], 2),
    }


def page_figures(client: httpx.Client, job: Job) -> dict[str, dict]:
    positions = JobLog.objects.filter(job=job).order_by("txid", "id").values_list("txid", "id")
    count = positions.count()
    deep_txid, deep_id = positions[count // 10]
    deep = f"{deep_txid}.{deep_id}"
    base = f"/api/jobs/{job.pk}/logs"

    def get(query: str) -> Callable[[], object]:
        def run() -> None:
            response = client.get(f"{base}?{query}")
            response.raise_for_status()
            assert response.json()["results"], query

        return run

    def get_empty(url: str) -> Callable[[], object]:
        def run() -> None:
            response = client.get(url)
            response.raise_for_status()
            assert not response.json()["results"], url

        return run

    def get_any(url: str) -> Callable[[], object]:
        return lambda: client.get(url).raise_for_status()

    return {
        "newest 100": timed(get("limit=100")),
        "deep page before (10% from start)": timed(get(f"limit=100&before={deep}")),
        "deep page after (10% from start)": timed(get(f"limit=100&after={deep}")),
        "level=error, newest 100": timed(get("limit=100&level=error")),
        "q=timeout, newest 100": timed(get("limit=100&q=timeout")),
        "level=warning&q=attempt 5, newest 100": timed(get("limit=100&level=warning&q=attempt 5")),
        "q matching one line": timed(get(f"limit=100&q=for image {count // 2} on")),
        "q matching a few lines": timed(get(f"limit=100&q=image {count // 3}")),
        "q matching nothing": timed(get_empty(f"{base}?limit=100&q=zebra crossing")),
        "q words everywhere, text nowhere": timed(get_empty(f"{base}?limit=100&q=saved image"), 5),
        "image=N (context filter)": timed(get(f"limit=100&image={count // 2}")),
        "project search q matching a few lines": timed(
            get_any(f"/api/logs?project={job.project_id}&limit=100&q=image {count // 3}")
        ),
        "project histogram, last 24 h, q=timeout": timed(
            get_any(f"/api/logs/histogram?project={job.project_id}&q=timeout")
        ),
        "job detail with legacy logs (1000)": timed(lambda: client.get(f"/api/jobs/{job.pk}/")),
        "log horizon query (in process)": timed(log_horizon),
    }


def peak_rss_mb(pid: int) -> tuple[float, float]:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = {line.split(":")[0]: int(line.split()[1]) for line in status if line.startswith("Vm")}
    return fields["VmRSS"] / 1024, fields["VmHWM"] / 1024


def download_figures(client: httpx.Client, job: Job, pid: int) -> dict[str, dict]:
    results = {}
    for fmt in ("text", "ndjson"):
        rss_before, peak_before = peak_rss_mb(pid)
        started, size, lines = time.perf_counter(), 0, 0
        with client.stream("GET", f"/api/jobs/{job.pk}/logs/download?format={fmt}") as response:
            for chunk in response.iter_bytes():
                size += len(chunk)
                lines += chunk.count(b"\n")
        seconds = time.perf_counter() - started
        rss_after, peak_after = peak_rss_mb(pid)
        results[fmt] = {
            "lines": lines,
            "MB": round(size / 1e6, 1),
            "seconds": round(seconds, 2),
            "lines_per_s": round(lines / seconds),
            "server_rss_before_MB": round(rss_before, 1),
            "server_peak_rss_MB": round(max(peak_after, peak_before), 1),
            "server_peak_growth_MB": round(peak_after - peak_before, 1),
        }
    return results


def sse_latency(base: str, job: Job, cookies: dict[str, str]) -> dict[str, float]:
    """Milliseconds from an INSERT's commit to the line's event in an SSE client."""
    received: dict[str, float] = {}
    ready = threading.Event()

    def listen() -> None:
        with httpx.Client(base_url=base, cookies=cookies, timeout=30) as client:
            url = f"/api/jobs/{job.pk}/logs/stream?tail=0"
            with client.stream("GET", url) as response:
                ready.set()
                for line in response.iter_lines():
                    if line.startswith("data:") and '"emit ' in line:
                        message = json.loads(line[5:])["message"]
                        received[message] = time.perf_counter()
                        if len(received) == EMITS:
                            return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    ready.wait(10)
    time.sleep(0.5)
    committed = emit_lines(job.pk, "emit", EMITS)
    listener.join(30)
    return {**latency_summary(committed, received), "push": listener_connected()}


def listener_connected() -> bool:
    """Whether a web process holds its LISTEN connection (streams are pushed, not polled)."""
    with psycopg.connect(settings.DATABASE_URL, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name LIKE %s",
            [f"%{LISTENER_APP_SUFFIX}"],
        ).fetchone()
        return row[0] > 0


def idle_stream_load(base: str, job: Job, cookies: dict[str, str], streams: int = 20) -> dict:
    """Database transactions per second while `streams` idle streams wait for lines."""

    def committed() -> int:
        with psycopg.connect(settings.DATABASE_URL, autocommit=True) as conn:
            row = conn.execute(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
            ).fetchone()
            return row[0]

    async def measure() -> dict:
        limits = httpx.Limits(max_connections=streams + 2)
        async with httpx.AsyncClient(
            base_url=base, cookies=cookies, timeout=30, limits=limits
        ) as client:
            url = f"/api/jobs/{job.pk}/logs/stream?tail=0"
            contexts = [client.stream("GET", url) for _ in range(streams)]
            responses = [await context.__aenter__() for context in contexts]
            await asyncio.sleep(2.0)  # past their history, and the listener connected
            before, started = await asyncio.to_thread(committed), time.perf_counter()
            await asyncio.sleep(IDLE_SECONDS)
            after, elapsed = await asyncio.to_thread(committed), time.perf_counter() - started
            push = await asyncio.to_thread(listener_connected)
            for context in contexts:
                await context.__aexit__(None, None, None)
        assert all(r.status_code == 200 for r in responses)
        return {
            "streams": streams,
            "db_transactions_per_s": round((after - before) / elapsed),
            "push": push,
        }

    return asyncio.run(measure())


def emit_lines(job_id: int, prefix: str, count: int) -> dict[str, float]:
    committed = {}
    with psycopg.connect(settings.DATABASE_URL, autocommit=True) as conn:
        for i in range(count):
            message = f"{prefix} {i}"
            conn.execute(
                "INSERT INTO jobs_joblog (job_id, job_partition_key, level, message, context) "
                "SELECT id, log_partition_key, 20, %s, '{}' FROM jobs_job WHERE id = %s",
                [message, job_id],
            )
            committed[message] = time.perf_counter()
            time.sleep(0.05)
    return committed


def latency_summary(committed: dict[str, float], received: dict[str, float]) -> dict[str, float]:
    delays = sorted((received[m] - committed[m]) * 1000 for m in committed if m in received)
    if not delays:
        return {"received": 0}
    return {
        "received": len(delays),
        "sent": len(committed),
        "p50_ms": round(statistics.median(delays), 1),
        "p95_ms": round(delays[int(0.95 * (len(delays) - 1))], 1),
        "max_ms": round(delays[-1], 1),
    }


def browser_latency(base: str, job: Job) -> dict[str, float] | str:
    """Milliseconds from commit to the line's row in the page, in headless Chromium.

    Also how long the job page takes from navigation to a live log view on this job.
    """
    chromium = os.environ.get("AMI_CHROMIUM", "/usr/bin/chromium")
    if sync_playwright is None:
        return "skipped: playwright not installed"
    if not Path(chromium).exists():
        return f"skipped: {chromium} not found"
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    committed, received = {}, {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=args)
        page = browser.new_context().new_page()
        page.goto(f"{base}/accounts/login/?next=/jobs/{job.pk}/")
        page.fill("input[name=username]", BENCH_USER)
        page.fill("input[name=password]", BENCH_PASSWORD)
        page.click("#sign-in")
        page.wait_for_selector("text=live", timeout=60_000)
        opened = []
        for _ in range(5):
            started = time.perf_counter()
            page.goto(f"{base}/jobs/{job.pk}/")
            page.wait_for_selector("text=live", timeout=60_000)
            opened.append((time.perf_counter() - started) * 1000)
        rows = page.eval_on_selector_all("#log .line", "els => els.length")
        for i in range(20):
            message = f"browser {i} {time.time_ns()}"
            committed.update(emit_lines(job.pk, message, 1))
            page.wait_for_selector(f"#log .msg >> text='{message} 0'", timeout=30_000)
            received[f"{message} 0"] = time.perf_counter()
        browser.close()
    return {
        **latency_summary(committed, received),
        "page_open_to_live_p50_ms": round(statistics.median(opened), 1),
        "rows_rendered": rows,
    }


def run(lines: int, live_only: bool = False) -> dict:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    call_command("migrate", verbosity=0)
    job = ensure_job(lines)
    env = {**os.environ, "DATABASE_URL": settings.DATABASE_URL}
    log_path = Path(settings.MEDIA_ROOT).parent / "bench-api-uvicorn.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with uvicorn_server(env, log_path) as (base, pid):
        cookies = session_cookies(job)
        with httpx.Client(base_url=base, cookies=cookies, timeout=300) as client:
            figures = {"job_lines": JobLog.objects.filter(job=job).count()}
            if not live_only:
                figures["pages"] = page_figures(client, job)
                figures["download"] = download_figures(client, job, pid)
            figures["emit_to_sse_client"] = sse_latency(base, job, cookies)
            figures["idle_streams"] = [
                idle_stream_load(base, job, cookies, streams) for streams in IDLE_STREAMS
            ]
            figures["emit_to_browser"] = browser_latency(base, job)
    return figures


def print_figures(figures: dict) -> None:
    table = Table(title=f"API read path, job with {figures['job_lines']:,} lines")
    for column in ("query", "p50 ms", "p95 ms", "max ms"):
        table.add_column(column)
    for name, row in figures.get("pages", {}).items():
        table.add_row(name, str(row["p50_ms"]), str(row["p95_ms"]), str(row["max_ms"]))
    console.print(table)
    for fmt, row in figures.get("download", {}).items():
        console.print(f"download {fmt}: {row}")
    console.print(f"emit -> SSE client: {figures['emit_to_sse_client']}")
    console.print(f"idle streams: {figures['idle_streams']}")
    console.print(f"emit -> browser: {figures['emit_to_browser']}")
    buffer = io.StringIO()
    json.dump(figures, buffer, indent=2)
    print(buffer.getvalue())
