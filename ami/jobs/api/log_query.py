"""Reading a job's log: parameters, filters and keyset pages in `(txid, id)` order.

Every page is bounded by the log horizon (`ami.jobs.api.horizon`): only lines with
`txid < H` are served, so a cursor never moves past a line that has yet to commit.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db.models import BooleanField, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from ami.jobs.api.cursor import MAX_BIGINT, SHOWN_CHARS, START, BadCursor, Cursor
from ami.jobs.models import JobLog

ROW_FIELDS = ("txid", "id", "level", "message", "context", "created_at")
MAX_QUERY_LENGTH = 200  # characters of `q`
MAX_LEVEL = 32767  # the smallint column's bound
FILTER_WINDOW = 5_000  # lines of the job in the first filtered scan; each next one doubles
FILTER_WINDOW_MAX = 160_000  # past this, the rest is one query (a parallel scan beats windows)
_INTEGER = re.compile(r"[+-]?[0-9]{1,19}")  # ASCII only: `"²".isdigit()` is True, int() refuses it


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
    after: Cursor | None = None
    before: Cursor | None = None
    limit: int = 100
    filters: LogFilters = field(default_factory=LogFilters)

    @property
    def ascending(self) -> bool:
        return self.after is not None


@dataclass
class LogPage:
    rows: list[dict[str, Any]]
    horizon: int
    newer_cursor: Cursor  # pass as `after` to get the lines that follow
    older_cursor: Cursor | None  # pass as `before` for older lines; None when there are none


def shown(raw: str) -> str:
    """`raw` as an error message may echo it: short, and safe to encode."""
    return repr(raw[:SHOWN_CHARS].encode("utf-8", "backslashreplace").decode())


def text_param(params, name: str) -> str:
    """The parameter as text PostgreSQL accepts: no NUL, no lone surrogate."""
    raw = params.get(name, "")
    if "\x00" in raw:
        raise BadLogQuery({name: "must not contain NUL characters"})
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise BadLogQuery({name: f"must be valid text, got {shown(raw)}"}) from None
    return raw


def parse_level(raw: str) -> int:
    """A minimum level from a name (`warning`) or a number (`30`)."""
    value = raw.strip()
    if _INTEGER.fullmatch(value):
        level = int(value)
        if not 0 <= level <= MAX_LEVEL:
            raise BadLogQuery({"level": f"must be between 0 and {MAX_LEVEL}, got {level}"})
        return level
    names = logging.getLevelNamesMapping()
    level = names.get(value.upper())
    if level is None:
        known = ", ".join(sorted(n.lower() for n in names if n not in {"WARN", "FATAL"}))
        raise BadLogQuery({"level": f"unknown level {shown(raw)}; use a number or one of {known}"})
    return level


def parse_int(params, name: str, *, minimum: int, maximum: int = MAX_BIGINT) -> int | None:
    """An integer parameter in `[minimum, maximum]`, None when absent; BadLogQuery if not."""
    raw = text_param(params, name)
    if raw == "":
        return None
    if not _INTEGER.fullmatch(raw.strip()):
        raise BadLogQuery({name: f"must be an integer, got {shown(raw)}"})
    value = int(raw)
    if not minimum <= value <= maximum:
        raise BadLogQuery({name: f"must be between {minimum} and {maximum}, got {value}"})
    return value


def parse_cursor(params, name: str) -> Cursor | None:
    """A cursor parameter (an opaque string from a response), None when absent."""
    raw = text_param(params, name).strip()
    if raw == "":
        return None
    try:
        return Cursor.parse(raw)
    except BadCursor as error:
        raise BadLogQuery({name: str(error)}) from None


def parse_time(params, name: str) -> datetime | None:
    raw = text_param(params, name)
    if not raw:
        return None
    try:
        value = parse_datetime(raw.replace(" ", "+"))
        if value is not None and timezone.is_aware(value):
            value = value.astimezone(UTC)  # PostgreSQL refuses offsets past +-15:59
    except (ValueError, OverflowError):
        value = None
    if value is None:
        raise BadLogQuery({name: f"must be an ISO 8601 datetime, got {shown(raw)}"})
    return value if timezone.is_aware(value) else value.replace(tzinfo=UTC)


def parse_filters(params) -> LogFilters:
    """Filters from query parameters `level`, `since`, `until`, `q`; BadLogQuery if invalid."""
    level_raw = text_param(params, "level")
    since, until = parse_time(params, "since"), parse_time(params, "until")
    if since and until and since > until:
        raise BadLogQuery({"until": "must not be earlier than since"})
    q = text_param(params, "q").strip()
    if len(q) > MAX_QUERY_LENGTH:
        raise BadLogQuery({"q": f"must be at most {MAX_QUERY_LENGTH} characters"})
    return LogFilters(
        min_level=parse_level(level_raw) if level_raw else None, since=since, until=until, q=q
    )


def parse_page_request(params) -> LogPageRequest:
    """A page request from query parameters; BadLogQuery names each bad parameter."""
    after = parse_cursor(params, "after")
    before = parse_cursor(params, "before")
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
    """The job's lines matching `filters`; the (job_id, txid, id) index drives every scan."""
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


def between(lines: QuerySet, low: Cursor, high: Cursor) -> QuerySet:
    """Lines strictly between two positions (row comparisons: an index range on (txid, id))."""
    return lines.filter(
        RawSQL(
            '("jobs_joblog"."txid", "jobs_joblog"."id") > (%s, %s)',
            (low.txid, low.id),
            output_field=BooleanField(),
        ),
        RawSQL(
            '("jobs_joblog"."txid", "jobs_joblog"."id") < (%s, %s)',
            (high.txid, high.id),
            output_field=BooleanField(),
        ),
    )


def in_order(lines: QuerySet, ascending: bool) -> QuerySet:
    return lines.order_by("txid", "id") if ascending else lines.order_by("-txid", "-id")


def fetch_page(job_id: int, request: LogPageRequest, horizon: int) -> LogPage:
    """One page of lines below `horizon`, newest first unless `after` was given.

    Call with an H from `log_horizon` returned before this call: the rows' snapshot must be
    taken after H's.
    """
    top = Cursor(horizon, 0)
    if request.ascending:
        low, high = request.after, top
    else:
        low, high = START, top if request.before is None else min(top, request.before)
    if request.filters.is_empty:
        rows = _scan(job_id, request, low, high, request.limit)
    else:
        rows = _scan_in_windows(job_id, request, low, high)
    return paginate([row_dict(row) for row in rows], request, horizon)


def _scan(job_id: int, request: LogPageRequest, low: Cursor, high: Cursor, limit: int) -> list:
    lines = between(filtered_lines(job_id, request.filters), low, high)
    return list(in_order(lines, request.ascending).values(*ROW_FIELDS)[:limit])


def _scan_in_windows(job_id: int, request: LogPageRequest, low: Cursor, high: Cursor) -> list:
    """Filtered scans over consecutive windows of the job's lines, in page order.

    PostgreSQL cannot estimate how many messages match `q` (or a rare level), and for a
    guessed handful of matches it prefers reading the whole table and sorting. Bounding each
    query to the next lines of the job (found on the (job_id, txid, id) index) keeps the scan
    on that index and stops soon after the page is full; windows double, so a rare match
    costs a handful of queries, not one per window.
    """
    rows: list[dict] = []
    positions = JobLog.objects.filter(job_id=job_id).values_list("txid", "id")
    size = FILTER_WINDOW
    while len(rows) < request.limit and low < high:
        window = in_order(between(positions, low, high), request.ascending)
        found = window[size - 1 : size].first() if size <= FILTER_WINDOW_MAX else None
        edge = Cursor(*found) if found else None
        size *= 2
        wanted = request.limit - len(rows)
        if request.ascending:
            rows += _scan(job_id, request, low, edge.successor() if edge else high, wanted)
            low = edge or high
        else:
            rows += _scan(job_id, request, edge.predecessor() if edge else low, high, wanted)
            high = edge or low
        if edge is None:
            break
    return rows


def paginate(rows: list[dict], request: LogPageRequest, horizon: int) -> LogPage:
    """The page and its cursors; a short page scanned everything up to its bound."""
    full = len(rows) == request.limit
    top = Cursor(horizon, 0)
    if request.ascending:
        newer = (
            Cursor.parse(rows[-1]["cursor"])
            if full
            else max(request.after, Cursor.below_horizon(horizon))
        )
        if rows:
            older = Cursor.parse(rows[0]["cursor"])
        else:
            older = request.after.successor() if request.after > START else None
        return LogPage(rows, horizon, newer, older)
    # Newest first: everything matching between the page and its upper bound was scanned.
    bound = top if request.before is None else min(top, request.before)
    older = Cursor.parse(rows[-1]["cursor"]) if full else None
    return LogPage(rows, horizon, bound.predecessor(), older)


def row_dict(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "cursor": str(Cursor.of(row)),
        "created_at": row["created_at"].isoformat(),
        "level": row["level"],
        "level_name": logging.getLevelName(row["level"]),
        "message": row["message"],
        "context": row["context"],
    }
