"""The SSE stream and the download, served by a real uvicorn process."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import time
from pathlib import Path

import httpx
import pytest
from django.db import connections

from ami.jobs.locking import transition
from ami.jobs.logging import FINAL_LINE_KEY
from ami.jobs.models import JobLog
from ami.jobs.states import JobStatus
from tests.support.asgi_server import database_url
from tests.support.log_writers import write_mixed_transactions
from tests.support.logs import add_lines, cursor_of
from tests.support.sse import Event, events

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")
READ_TIMEOUT = 15.0  # seconds; the stream sends a heartbeat every 0.5 s in these tests
FINISHING_SECONDS = 4.0  # between a job's final status and its last line: > a status check


def stream_events(base: str, job_id: int, cookies: dict, query: str = "", headers=None):
    client = httpx.Client(base_url=base, cookies=cookies, timeout=READ_TIMEOUT)
    response = client.stream("GET", f"/api/jobs/{job_id}/logs/stream?{query}", headers=headers)
    return client, response


def next_logs(iterator, count: int) -> list[dict]:
    lines = []
    for event in iterator:
        if event.event == "log":
            lines.append(json.loads(event.data))
            assert event.id == lines[-1]["cursor"]
            if len(lines) == count:
                return lines
    raise AssertionError(f"stream ended after {len(lines)} of {count} lines")


def test_history_then_live_then_heartbeat_then_end(asgi_server, staged_job, session_cookie):
    base, _ = asgi_server
    lines = add_lines(staged_job, 30)
    transition(staged_job.pk, JobStatus.STARTED)
    client, request = stream_events(base, staged_job.pk, session_cookie, "tail=10")
    with client, request as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        received = events(response.iter_lines())
        history = next_logs(received, 10)
        assert [row["id"] for row in history] == [line.id for line in lines[-10:]]
        live = add_lines(staged_job, 3, start=30)
        assert [row["message"] for row in next_logs(received, 3)] == [line.message for line in live]
        assert next(e for e in received if e.event != "log").event == "comment"  # heartbeat
        transition(staged_job.pk, JobStatus.SUCCESS)
        last = JobLog.objects.create(job=staged_job, message="job finished")
        rest = list(received)
    assert [json.loads(e.data)["id"] for e in rest if e.event == "log"] == [last.id]
    assert rest[-1].event == "end"


def test_resumes_after_last_event_id(asgi_server, staged_job, session_cookie):
    base, _ = asgi_server
    lines = add_lines(staged_job, 20)
    transition(staged_job.pk, JobStatus.REVOKED)
    headers = {"Last-Event-ID": cursor_of(lines[9])}
    client, request = stream_events(base, staged_job.pk, session_cookie, "after=0.0", headers)
    with client, request as response:
        received = list(events(response.iter_lines()))
    cursors = [e.id for e in received if e.event == "log"]
    assert cursors == [cursor_of(line) for line in lines[10:]]
    assert received[-1].event == "end"


def test_stream_filters_by_level(asgi_server, staged_job, session_cookie):
    base, _ = asgi_server
    add_lines(staged_job, 25)
    transition(staged_job.pk, JobStatus.FAILURE)
    client, request = stream_events(base, staged_job.pk, session_cookie, "after=0.0&level=error")
    with client, request as response:
        received = [e for e in events(response.iter_lines()) if e.event == "log"]
    assert [json.loads(e.data)["message"] for e in received] == [
        f"line {i}" for i in range(4, 25, 5)
    ]


def test_download_text_and_ndjson(asgi_server, staged_job, session_cookie):
    base, _ = asgi_server
    add_lines(staged_job, 12_000)  # more than two batches
    with httpx.Client(base_url=base, cookies=session_cookie, timeout=60) as client:
        text = client.get(f"/api/jobs/{staged_job.pk}/logs/download?format=text")
        assert text.status_code == 200
        assert "attachment" in text.headers["content-disposition"]
        rows = text.text.splitlines()
        assert len(rows) == 12_000
        assert rows[0].endswith("DEBUG    line 0")
        assert rows[-1].endswith("ERROR    line 11999")
        ndjson = client.get(f"/api/jobs/{staged_job.pk}/logs/download?format=ndjson&q=line 1199")
        parsed = [json.loads(row) for row in ndjson.text.splitlines()]
        expected = ["line 1199", *(f"line 1199{i}" for i in range(10))]
        assert [row["message"] for row in parsed] == expected
        keys = {"id", "cursor", "created_at", "level", "level_name", "message", "context"}
        assert keys == set(parsed[0])
        assert client.get(f"/api/jobs/{staged_job.pk}/logs/download").status_code == 200


def test_anonymous_and_outsiders_are_refused(asgi_server, staged_job, outsider):
    base, _ = asgi_server
    with httpx.Client(base_url=base, timeout=10) as client:
        for path in ("stream", "download"):
            url = f"/api/jobs/{staged_job.pk}/logs/{path}"
            assert client.get(url).status_code == 403
            assert client.get(url, auth=("outsider", "pw-outsider")).status_code == 404
            assert client.get(url, auth=("outsider", "wrong")).status_code == 403


def server_threads(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("Threads:")))


def test_many_open_streams_share_a_few_threads(asgi_server, staged_job, session_cookie):
    base, pid = asgi_server
    transition(staged_job.pk, JobStatus.STARTED)
    clients = 40

    async def watch(client: httpx.AsyncClient, polling: asyncio.Event) -> Event:
        async with client.stream("GET", f"/api/jobs/{staged_job.pk}/logs/stream?tail=0") as r:
            async for event in async_events(r.aiter_lines()):
                if event.event == "comment":  # a heartbeat: sent only from the polling loop
                    polling.set()
                elif event.event == "log":
                    return event
        raise AssertionError("stream ended without a line")

    async def run() -> tuple[int, list[Event]]:
        limits = httpx.Limits(max_connections=clients + 5)
        async with httpx.AsyncClient(
            base_url=base, cookies=session_cookie, timeout=READ_TIMEOUT, limits=limits
        ) as client:
            polling = [asyncio.Event() for _ in range(clients)]
            tasks = [asyncio.create_task(watch(client, p)) for p in polling]
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in polling)), READ_TIMEOUT)
            threads = server_threads(pid)  # every stream is past its history, polling
            await asyncio.to_thread(log_from_a_thread, staged_job.pk, "to everyone")
            return threads, await asyncio.wait_for(asyncio.gather(*tasks), READ_TIMEOUT)

    threads, received = asyncio.run(run())
    assert [json.loads(e.data)["message"] for e in received] == ["to everyone"] * clients
    print(f"{threads} server threads for {clients} open streams")
    assert threads < clients // 2, f"{threads} server threads for {clients} open streams"


def log_from_a_thread(job_id: int, message: str) -> None:
    try:
        JobLog.objects.create(job_id=job_id, message=message)
    finally:
        connections.close_all()  # this thread's connection would outlive the test


async def async_events(lines):
    buffer: list[str] = []
    async for line in lines:
        buffer.append(line)
        if line == "":
            for event in events(iter(buffer)):
                yield event
            buffer = []


def test_stream_delivers_every_committed_line_from_concurrent_writers(
    asgi_server, staged_job, session_cookie
):
    base, _ = asgi_server
    transition(staged_job.pk, JobStatus.STARTED)
    context = multiprocessing.get_context("spawn")
    writers = [
        context.Process(
            target=write_mixed_transactions, args=(database_url(), staged_job.pk, w, 80)
        )
        for w in range(4)
    ]
    client, request = stream_events(base, staged_job.pk, session_cookie, "tail=0")
    with client, request as response:
        received = events(response.iter_lines())
        for process in writers:
            process.start()
        for process in writers:
            process.join(timeout=60)
            assert process.exitcode == 0
        transition(staged_job.pk, JobStatus.SUCCESS)
        rest = list(received)
    assert rest[-1].event == "end"
    streamed = [e.id for e in rest if e.event == "log"]
    committed = [
        f"{txid}.{line_id}"
        for txid, line_id in JobLog.objects.filter(job=staged_job)
        .order_by("txid", "id")
        .values_list("txid", "id")
    ]
    assert len(committed) > 100
    assert streamed == committed


@pytest.mark.parametrize("final", [JobStatus.SUCCESS, JobStatus.COMPLETED_WITH_ERRORS])
def test_end_comes_after_the_line_logged_once_the_job_is_final(
    asgi_server, staged_job, session_cookie, final
):
    """The job's own last line ("Job finished") is logged after its status change, here late."""
    base, _ = asgi_server
    transition(staged_job.pk, JobStatus.STARTED)
    client, request = stream_events(base, staged_job.pk, session_cookie, "tail=0")
    with client, request as response:
        received = events(response.iter_lines())
        transition(staged_job.pk, final)
        # Closing the stages and deleting the NATS queue come first: let the stream see the
        # final status (it looks every second) before the last line is written.
        final_at, early = time.monotonic(), []
        while time.monotonic() - final_at < FINISHING_SECONDS:
            early.append(next(received))
            assert early[-1].event == "comment", f"{early[-1].event} before the last line"
        last = JobLog.objects.create(
            job=staged_job, message="Job finished", context={FINAL_LINE_KEY: str(final)}
        )
        rest = list(received)
    assert [json.loads(e.data)["id"] for e in rest if e.event == "log"] == [last.id]
    assert rest[-1].event == "end"
