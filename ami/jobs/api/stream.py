"""`GET /api/jobs/{id}/logs/stream`: the job's log as server-sent events, history then live.

One async generator per client polls for lines above its cursor (bounded by the safe
horizon), so resuming from `Last-Event-ID` never skips a line that committed late. The
stream sends a comment line as heartbeat when idle, and ends with an `end` event once the
job is final and every line written before it became final has been sent.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import NamedTuple

from django.conf import settings
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from ami.jobs.api.async_support import (
    bad_query_response,
    db,
    release_request_thread,
    visible_job,
)
from ami.jobs.api.horizon import safe_horizon, sequence_position
from ami.jobs.api.log_query import (
    BadLogQuery,
    LogFilters,
    LogPageRequest,
    fetch_page,
    parse_filters,
    parse_int,
)
from ami.jobs.models import Job
from ami.jobs.states import FINAL_STATES

BATCH = 500  # lines per query while catching up
TAIL_DEFAULT = 200  # history lines sent first when the client gives no cursor
TAIL_MAX = 5000
RETRY_MS = 2000  # how soon EventSource reconnects after a drop
STATUS_CHECK_SECONDS = 1.0  # how often an idle stream looks whether its job has finished
FINAL_OR_GONE = {None, *(str(state) for state in FINAL_STATES)}


class Poll(NamedTuple):
    rows: list[dict]
    cursor: int
    horizon: int
    status: str | None  # "" when not checked; None when the job is gone


def sse_event(line: dict) -> str:
    return f"id: {line['id']}\nevent: log\ndata: {json.dumps(line, separators=(',', ':'))}\n\n"


def _job_status(job_id: int) -> str | None:
    return Job.objects.filter(pk=job_id).values_list("status", flat=True).first()


def _history(job_id: int, filters: LogFilters, tail: int) -> tuple[list[dict], int]:
    horizon = safe_horizon()
    if tail == 0:
        return [], horizon
    page = fetch_page(job_id, LogPageRequest(limit=tail, filters=filters), horizon)
    return list(reversed(page.rows)), page.newer_cursor


def _after(job_id: int, cursor: int, filters: LogFilters, check_status: bool) -> Poll:
    """The next lines after `cursor`, and the job's status when asked (one pool hop)."""
    horizon = safe_horizon(settle=False, max_age=settings.API_SSE_POLL_SECONDS / 2)
    page = fetch_page(job_id, LogPageRequest(after=cursor, limit=BATCH, filters=filters), horizon)
    status = _job_status(job_id) if check_status and len(page.rows) < BATCH else ""
    return Poll(page.rows, page.newer_cursor, horizon, status)


async def log_events(
    job_id: int, cursor: int | None, filters: LogFilters, tail: int
) -> AsyncIterator[str]:
    """History (from `cursor`, or the newest `tail` lines), then live lines, then `end`."""
    release_request_thread()
    yield f"retry: {RETRY_MS}\n\n"
    if cursor is None:
        rows, cursor = await db(_history, job_id, filters, tail)
        for line in rows:
            yield sse_event(line)
    final_position: int | None = None
    last_sent, status_checked = time.monotonic(), 0.0
    while True:
        check_status = final_position is None and (
            time.monotonic() - status_checked >= STATUS_CHECK_SECONDS
        )
        poll = await db(_after, job_id, cursor, filters, check_status)
        if check_status:
            status_checked = time.monotonic()
        cursor = poll.cursor
        for line in poll.rows:
            yield sse_event(line)
        if poll.rows:
            last_sent = time.monotonic()
            if len(poll.rows) == BATCH:
                continue
        if final_position is not None and poll.horizon >= final_position:
            yield "event: end\ndata: {}\n\n"
            return
        if poll.status in FINAL_OR_GONE:
            # Lines drawn before this point may still commit: drain up to here, then end.
            final_position = await db(sequence_position)
            continue
        if time.monotonic() - last_sent >= settings.API_SSE_HEARTBEAT_SECONDS:
            yield ": heartbeat\n\n"
            last_sent = time.monotonic()
        await asyncio.sleep(settings.API_SSE_POLL_SECONDS)


def start_cursor(request: HttpRequest) -> int | None:
    """Where to resume: `Last-Event-ID` (sent by EventSource on reconnect), else `after`."""
    last_event_id = request.headers.get("Last-Event-ID", "").strip()
    if last_event_id:
        return parse_int({"Last-Event-ID": last_event_id}, "Last-Event-ID", minimum=0)
    return parse_int(request.GET, "after", minimum=0)


async def log_stream(request: HttpRequest, pk: int) -> HttpResponse:
    job, refusal = await visible_job(request, pk)
    if refusal:
        return refusal
    try:
        cursor = start_cursor(request)
        tail = parse_int(request.GET, "tail", minimum=0, maximum=TAIL_MAX)
        filters = parse_filters(request.GET)
    except BadLogQuery as error:
        return bad_query_response(error)
    events = log_events(job.pk, cursor, filters, TAIL_DEFAULT if tail is None else tail)
    response = StreamingHttpResponse(events, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # tell a fronting nginx not to buffer the stream
    return response
