"""`GET /api/jobs/{id}/logs/stream`: the job's log as server-sent events, history then live.

One async generator per client reads the lines after its cursor, below the log horizon
(`ami.jobs.api.horizon`), so resuming from `Last-Event-ID` never skips a line that committed
late. It looks when woken by its job's NOTIFY (`ami.jobs.api.wakeups`: a line committed, the
status changed), at a slow fallback interval, and at the old poll interval while the
process's listener is not connected or while lines wait above the horizon. Each event's id
is the line's cursor. The stream sends a comment line as heartbeat when idle, and ends with
an `end` event once the job is final and the job's own last line (the one marked with
`FINAL_LINE_KEY`, logged just after the status change) and every line before it have been
sent. A job that turned final without that line (its finisher died, or the job was deleted)
ends after a grace period, with every line committed by then.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import NamedTuple

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils import timezone

from ami.jobs.api import wakeups
from ami.jobs.api.async_support import (
    bad_query_response,
    db,
    release_request_thread,
    visible_job,
)
from ami.jobs.api.cursor import Cursor
from ami.jobs.api.horizon import log_horizon, shared_horizon
from ami.jobs.api.log_query import (
    BadLogQuery,
    LogFilters,
    LogPageRequest,
    fetch_page,
    parse_cursor,
    parse_filters,
    parse_int,
)
from ami.jobs.logging import FINAL_LINE_KEY
from ami.jobs.models import Job, JobLog
from ami.jobs.states import FINAL_STATES

BATCH = 500  # lines per query while catching up
TAIL_DEFAULT = 200  # history lines sent first when the client gives no cursor
TAIL_MAX = 5000
RETRY_MS = 2000  # how soon EventSource reconnects after a drop
STATUS_CHECK_SECONDS = 1.0  # how often an idle stream looks whether its job has finished
END_GRACE_SECONDS = 5.0  # default wait, from the finish, for a final job's last line
FINAL_OR_GONE = {None, *(str(state) for state in FINAL_STATES)}
_XMAX_SQL = "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint"


class Poll(NamedTuple):
    rows: list[dict]
    cursor: Cursor
    status: str | None  # "" when not checked; None when the job is gone
    blocked: bool  # committed lines of the job wait above the horizon (an older writer is open)
    more: bool = False  # a full batch, or a filtered scan that stopped early: read on at once


def sse_event(line: dict) -> str:
    data = json.dumps(line, separators=(",", ":"))
    return f"id: {line['cursor']}\nevent: log\ndata: {data}\n\n"


def job_status(job_id: int) -> str | None:
    return Job.objects.filter(pk=job_id).values_list("status", flat=True).first()


def _next_transaction_id() -> int:
    """`xmax` of a fresh snapshot: every transaction that has ended has a smaller id."""
    with connection.cursor() as cursor:
        cursor.execute(_XMAX_SQL)
        return cursor.fetchone()[0]


def _history(job_id: int, filters: LogFilters, tail: int) -> tuple[list[dict], Cursor]:
    horizon = log_horizon()
    if tail == 0:
        return [], Cursor.below_horizon(horizon)
    page = fetch_page(job_id, LogPageRequest(limit=tail, filters=filters), horizon)
    return list(reversed(page.rows)), page.newer_cursor


def _after(
    job_id: int,
    cursor: Cursor,
    filters: LogFilters,
    check_status: bool,
    max_age: float,
    check_held: bool,
) -> Poll:
    """The next lines after `cursor`, and the job's status when asked (one pool hop).

    Also whether committed lines of the job are held above the horizon: their commit has
    notified already, and the writer that holds H back may be another job's, whose commit
    will not wake this stream.
    """
    horizon = shared_horizon.get(max_age=max_age)
    page = fetch_page(job_id, LogPageRequest(after=cursor, limit=BATCH, filters=filters), horizon)
    if len(page.rows) == BATCH or page.partial:
        return Poll(page.rows, page.newer_cursor, "", False, more=True)
    status = job_status(job_id) if check_status else ""
    held = check_held and _held_above(job_id, horizon)
    return Poll(page.rows, page.newer_cursor, status, held)


def _held_above(job_id: int, horizon: int) -> bool:
    return JobLog.objects.of_job(job_id).filter(txid__gte=horizon).exists()


def _final_line(job_id: int) -> Cursor | None:
    """Where the job's last line is, once it is committed (the newest lines come first)."""
    row = (
        JobLog.objects.of_job(job_id)
        .filter(context__has_key=FINAL_LINE_KEY)
        .order_by("-txid", "-id")
        .values("txid", "id")
        .first()
    )
    return Cursor.of(row) if row else None


def end_position(job_id: int, seen_final_for: float) -> Cursor | None:
    """Where a stream of a final job ends: its last line, or after the grace what committed.

    The grace runs from the job's finish (a job that ended long ago has no line to wait
    for), or from when this stream saw it final if the job has no finish time (deleted).
    """
    final_line = _final_line(job_id)
    if final_line is not None:
        return final_line
    if max(seen_final_for, _seconds_since_finished(job_id)) < end_grace():
        return None
    return Cursor.below_horizon(_next_transaction_id())


def _seconds_since_finished(job_id: int) -> float:
    finished_at = Job.objects.filter(pk=job_id).values_list("finished_at", flat=True).first()
    return (timezone.now() - finished_at).total_seconds() if finished_at else 0.0


def end_grace() -> float:
    """Seconds a stream waits for a final job's last line before it drains and ends."""
    return float(getattr(settings, "API_SSE_END_GRACE_SECONDS", END_GRACE_SECONDS))


async def log_events(
    job_id: int, cursor: Cursor | None, filters: LogFilters, tail: int
) -> AsyncIterator[str]:
    """History (from `cursor`, or the newest `tail` lines), then live lines, then `end`."""
    release_request_thread()
    yield f"retry: {RETRY_MS}\n\n"
    # Subscribed before the first query: a line committed after it wakes this stream.
    with wakeups.subscribe(job_id) as wake:
        if cursor is None:
            rows, cursor = await db(_history, job_id, filters, tail)
            for line in rows:
                yield sse_event(line)
        async with aclosing(_live(job_id, cursor, filters, wake)) as live:
            async for event in live:
                yield event


async def _live(
    job_id: int, cursor: Cursor, filters: LogFilters, wake: wakeups.Subscription
) -> AsyncIterator[str]:
    """Lines after `cursor`, each time the stream is woken (or its fallback timer runs out)."""
    final_seen_at: float | None = None
    end_at: Cursor | None = None  # end once the cursor has reached this position
    last_sent, status_checked = time.monotonic(), 0.0
    blocked = False  # lines of the job wait above the horizon: poll until they pass it
    more = False  # the last query filled a batch: the next one continues it
    while True:
        # Taken before the query: a wakeup arriving during it is kept for the wait below.
        woken_at, status_changed = wake.take()
        push = wakeups.listener.connected
        status_every = wakeups.listener.poll_interval() if push else STATUS_CHECK_SECONDS
        check_status = final_seen_at is None and (
            status_changed or time.monotonic() - status_checked >= status_every
        )
        # A woken stream needs an H found after its wakeup, so it covers the notifying commit.
        max_age = settings.API_SSE_POLL_SECONDS / 2
        if woken_at is not None:
            max_age = min(max_age, time.monotonic() - woken_at)
        check_held = push and (woken_at is not None or blocked or more)
        poll = await db(_after, job_id, cursor, filters, check_status, max_age, check_held)
        if check_status:
            status_checked = time.monotonic()
        cursor, blocked, more = poll.cursor, poll.blocked, poll.more
        wakeups.registry.set_held(wake, blocked)
        for line in poll.rows:
            yield sse_event(line)
        if poll.rows:
            last_sent = time.monotonic()
        if more:
            continue
        if poll.status in FINAL_OR_GONE:
            final_seen_at = time.monotonic()
        if final_seen_at is not None and end_at is None:
            end_at = await db(end_position, job_id, time.monotonic() - final_seen_at)
        if end_at is not None and cursor >= end_at:
            yield "event: end\ndata: {}\n\n"
            return
        interval = wakeups.listener.poll_interval()
        if blocked or (final_seen_at is not None and end_at is None):
            # A writer that rolls back, or a grace that runs out, notifies nobody: look as before.
            interval = settings.API_SSE_POLL_SECONDS
        deadline = time.monotonic() + interval
        while True:
            heartbeat_at = last_sent + settings.API_SSE_HEARTBEAT_SECONDS
            if await wake.wait(min(deadline, heartbeat_at) - time.monotonic()):
                break
            if time.monotonic() >= heartbeat_at:
                yield ": heartbeat\n\n"
                last_sent = time.monotonic()
            if time.monotonic() >= deadline:
                break


def start_cursor(request: HttpRequest) -> Cursor | None:
    """Where to resume: `Last-Event-ID` (sent by EventSource on reconnect), else `after`."""
    last_event_id = request.headers.get("Last-Event-ID", "").strip()
    if last_event_id:
        return parse_cursor({"Last-Event-ID": last_event_id}, "Last-Event-ID")
    return parse_cursor(request.GET, "after")


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
