"""`GET /api/jobs/{id}/logs/download?format=text|ndjson`: the whole log, streamed.

Keyset batches in `(txid, id)` order (each one short query on the (job_id, txid, id) index)
feed an async generator, so memory stays flat however long the log is, and no connection or
transaction is held open between batches. The download covers every line below the log
horizon taken when it starts, oldest first; the filters of the log endpoint apply.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from ami.jobs.api.async_support import (
    bad_query_response,
    db,
    release_request_thread,
    visible_job,
)
from ami.jobs.api.cursor import START, Cursor
from ami.jobs.api.horizon import log_horizon
from ami.jobs.api.log_query import (
    BadLogQuery,
    LogFilters,
    LogPageRequest,
    fetch_page,
    parse_filters,
    shown,
    text_param,
)

BATCH = 5000  # lines per query and per chunk sent


def text_line(line: dict) -> str:
    return f"{line['created_at']} {line['level_name']:<8} {line['message']}\n"


def ndjson_line(line: dict) -> str:
    return json.dumps(line, separators=(",", ":"), ensure_ascii=False) + "\n"


FORMATS: dict[str, tuple[Callable[[dict], str], str, str]] = {
    "text": (text_line, "text/plain; charset=utf-8", "log"),
    "ndjson": (ndjson_line, "application/x-ndjson", "ndjson"),
}


def _batch(
    job_id: int, cursor: Cursor, horizon: int, filters: LogFilters
) -> tuple[list[dict], Cursor]:
    page = fetch_page(job_id, LogPageRequest(after=cursor, limit=BATCH, filters=filters), horizon)
    return page.rows, page.newer_cursor


async def log_chunks(
    job_id: int, filters: LogFilters, render: Callable[[dict], str]
) -> AsyncIterator[bytes]:
    """The job's lines below the horizon at start, oldest first, one chunk per batch."""
    release_request_thread()
    horizon = await db(log_horizon)
    cursor = START
    while True:
        rows, cursor = await db(_batch, job_id, cursor, horizon, filters)
        if rows:
            yield "".join(render(line) for line in rows).encode()
        if len(rows) < BATCH:
            return


async def log_download(request: HttpRequest, pk: int) -> HttpResponse:
    job, refusal = await visible_job(request, pk)
    if refusal:
        return refusal
    try:
        fmt = text_param(request.GET, "format") or "text"
        if fmt not in FORMATS:
            raise BadLogQuery({"format": f"unknown format {shown(fmt)}; use text or ndjson"})
        filters = parse_filters(request.GET)
    except BadLogQuery as error:
        return bad_query_response(error)
    render, content_type, extension = FORMATS[fmt]
    response = StreamingHttpResponse(log_chunks(job.pk, filters, render), content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="job-{job.pk}-log.{extension}"'
    return response
