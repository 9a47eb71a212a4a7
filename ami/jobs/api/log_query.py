"""Reading a job's log: parameters, filters and keyset pages by id.

Every page is bounded by the safe horizon (`ami.jobs.api.horizon`): lines above it are served
on a later request, so a cursor never moves past a line that has yet to commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from ami.jobs.models import JobLog

ROW_FIELDS = ("id", "level", "message", "context", "created_at")
MAX_QUERY_LENGTH = 200  # characters of `q`
MAX_LEVEL = 32767  # the smallint column's bound
FILTER_WINDOW = 5_000  # ids of the job in the first filtered scan; each next one doubles
FILTER_WINDOW_MAX = 160_000  # past this, the rest is one query (a parallel scan beats windows)


class BadLogQuery(ValueError):
    """Bad log query parameters: `errors` maps each parameter to what is wrong with it."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class LogFilters:
    min_level: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    q: str = ""

    @property
    def is_empty(self) -> bool:
        return self.min_level is None and not self.since and not self.until and not self.q

    def as_params(self) -> dict[str, str]:
        params = {}
        if self.min_level is not None:
            params["level"] = str(self.min_level)
        if self.since:
            params["since"] = self.since.isoformat()
        if self.until:
            params["until"] = self.until.isoformat()
        if self.q:
            params["q"] = self.q
        return params


@dataclass(frozen=True)
class LogPageRequest:
    after: int | None = None
    before: int | None = None
    limit: int = 100
    filters: LogFilters = field(default_factory=LogFilters)

    @property
    def ascending(self) -> bool:
        return self.after is not None


@dataclass
class LogPage:
    rows: list[dict[str, Any]]
    horizon: int
    newer_cursor: int  # pass as `after` to get the lines that follow
    older_cursor: int | None  # pass as `before` for older lines; None when there are none


def parse_level(raw: str) -> int:
    """A minimum level from a name (`warning`) or a number (`30`)."""
    value = raw.strip()
    if value.isdigit():
        level = int(value)
        if level > MAX_LEVEL:
            raise BadLogQuery({"level": f"must be at most {MAX_LEVEL}"})
        return level
    names = logging.getLevelNamesMapping()
    level = names.get(value.upper())
    if level is None:
        known = ", ".join(sorted(n.lower() for n in names if n not in {"WARN", "FATAL"}))
        raise BadLogQuery({"level": f"unknown level {raw!r}; use a number or one of {known}"})
    return level


def parse_int(params, name: str, *, minimum: int, maximum: int | None = None) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadLogQuery({name: f"must be an integer, got {raw!r}"}) from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise BadLogQuery({name: f"must be {bound}, got {value}"})
    return value


def parse_time(params, name: str) -> datetime | None:
    raw = params.get(name)
    if not raw:
        return None
    try:
        value = parse_datetime(raw.replace(" ", "+"))
    except ValueError:
        value = None
    if value is None:
        raise BadLogQuery({name: f"must be an ISO 8601 datetime, got {raw!r}"})
    return value if timezone.is_aware(value) else value.replace(tzinfo=UTC)


def parse_filters(params) -> LogFilters:
    """Filters from query parameters `level`, `since`, `until`, `q`; BadLogQuery if invalid."""
    level_raw = params.get("level")
    since, until = parse_time(params, "since"), parse_time(params, "until")
    if since and until and since > until:
        raise BadLogQuery({"until": "must not be earlier than since"})
    q = params.get("q", "").strip()
    if len(q) > MAX_QUERY_LENGTH:
        raise BadLogQuery({"q": f"must be at most {MAX_QUERY_LENGTH} characters"})
    return LogFilters(
        min_level=parse_level(level_raw) if level_raw else None, since=since, until=until, q=q
    )


def parse_page_request(params) -> LogPageRequest:
    """A page request from query parameters; BadLogQuery names each bad parameter."""
    after = parse_int(params, "after", minimum=0)
    before = parse_int(params, "before", minimum=1)
    if after is not None and before is not None:
        raise BadLogQuery({"before": "use either after (older to newer) or before, not both"})
    limit = parse_int(params, "limit", minimum=1, maximum=settings.API_LOG_PAGE_MAX)
    return LogPageRequest(
        after=after,
        before=before,
        limit=limit or settings.API_LOG_PAGE_DEFAULT,
        filters=parse_filters(params),
    )


def filtered_lines(job_id: int, filters: LogFilters) -> QuerySet:
    """The job's lines matching `filters`; the (job_id, id) index drives every scan."""
    lines = JobLog.objects.filter(job_id=job_id)
    if filters.min_level is not None:
        lines = lines.filter(level__gte=filters.min_level)
    if filters.since:
        lines = lines.filter(created_at__gte=filters.since)
    if filters.until:
        lines = lines.filter(created_at__lte=filters.until)
    if filters.q:
        lines = lines.filter(message__icontains=filters.q)
    return lines


def fetch_page(job_id: int, request: LogPageRequest, horizon: int) -> LogPage:
    """One page of lines at or below `horizon`, newest first unless `after` was given."""
    if request.ascending:
        low, high = request.after + 1, horizon
    else:
        low, high = 1, horizon if request.before is None else min(horizon, request.before - 1)
    if request.filters.is_empty:
        rows = _scan(job_id, request, low, high, request.limit)
    else:
        rows = _scan_in_windows(job_id, request, low, high)
    return paginate([row_dict(row) for row in rows], request, horizon)


def _scan(job_id: int, request: LogPageRequest, low: int, high: int, limit: int) -> list[dict]:
    lines = filtered_lines(job_id, request.filters).filter(id__gte=low, id__lte=high)
    lines = lines.order_by("id" if request.ascending else "-id")
    return list(lines.values(*ROW_FIELDS)[:limit])


def _scan_in_windows(job_id: int, request: LogPageRequest, low: int, high: int) -> list[dict]:
    """Filtered scans over consecutive windows of the job's ids, in page order.

    PostgreSQL cannot estimate how many messages match `q` (or a rare level), and for a
    guessed handful of matches it prefers reading the whole table and sorting. Bounding each
    query to the next ids of the job (found on the (job_id, id) index) keeps the scan on that
    index and stops soon after the page is full; windows double, so a rare match costs a
    handful of queries, not one per window.
    """
    rows: list[dict] = []
    job_ids = JobLog.objects.filter(job_id=job_id).values_list("id", flat=True)
    size = FILTER_WINDOW
    while len(rows) < request.limit and low <= high:
        window = job_ids.filter(id__gte=low, id__lte=high)
        window = window.order_by("id" if request.ascending else "-id")
        edge = window[size - 1 : size].first() if size <= FILTER_WINDOW_MAX else None
        size *= 2
        if request.ascending:
            rows += _scan(job_id, request, low, edge or high, request.limit - len(rows))
            low = (edge or high) + 1
        else:
            rows += _scan(job_id, request, edge or low, high, request.limit - len(rows))
            high = (edge or low) - 1
        if edge is None:
            break
    return rows


def paginate(rows: list[dict], request: LogPageRequest, horizon: int) -> LogPage:
    full = len(rows) == request.limit
    ids = [row["id"] for row in rows]
    if request.ascending:
        # A short page scanned everything up to the horizon: the next one starts there.
        newer = ids[-1] if full else max(request.after, horizon)
        older = ids[0] if ids else request.after + 1
        return LogPage(rows, horizon, newer, older if older > 1 else None)
    # Newest first: everything matching between the page and the horizon was scanned.
    scanned_from = horizon if request.before is None else min(horizon, request.before - 1)
    return LogPage(rows, horizon, scanned_from, ids[-1] if full else None)


def row_dict(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "created_at": row["created_at"].isoformat(),
        "level": row["level"],
        "level_name": logging.getLevelName(row["level"]),
        "message": row["message"],
        "context": row["context"],
    }
