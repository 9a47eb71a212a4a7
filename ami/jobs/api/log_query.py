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
from django.db import connection
from django.db.models import BooleanField, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from ami.jobs.api.cursor import MAX_BIGINT, SHOWN_CHARS, START, BadCursor, Cursor
from ami.jobs.models import JobLog
from ami.jobs.models.log import SEARCH_CONFIG

ROW_FIELDS = ("txid", "id", "level", "message", "context", "created_at")
MAX_QUERY_LENGTH = 200  # characters of `q`
MAX_LEVEL = 32767  # the smallint column's bound
MAX_CONTEXT_TEXT = 200  # characters of a text context filter (`worker`, `stage`)
FILTER_WINDOW = 5_000  # candidate lines in the first filtered scan; each next one doubles
# Candidate lines one filtered page may scan (windows of 5k, 10k, 20k and 40k). A page not
# full by then ends early, `partial`, with the cursor to go on from: a `q` whose words are on
# every line and its text on none took 6 s of database time on a million-line job.
SCAN_BUDGET = 75_000
_INTEGER = re.compile(r"[+-]?[0-9]{1,19}")  # ASCII only: `"²".isdigit()` is True, int() refuses it
IMAGE_KEY, IMAGE_LIST_KEY = "image_id", "image_ids"  # context keys of one image, of a batch
# Context filters: query parameter -> (context key the writers set, numeric id or text).
CONTEXT_FILTERS: dict[str, tuple[str, type]] = {
    "image": (IMAGE_KEY, int),
    "processing_service": ("processing_service_id", int),
    "worker": ("worker", str),
    "stage": ("stage", str),
}
_WORDS_SQL = "SELECT tsvector_to_array(to_tsvector(%s, %s))"
_MATCHES_WORDS = 'to_tsvector(\'simple\', "jobs_joblog"."message") @@ %s::tsquery'


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
    context: tuple[tuple[str, int | str], ...] = ()  # (parameter, value) of context filters

    @property
    def is_empty(self) -> bool:
        return (
            self.min_level is None
            and not self.since
            and not self.until
            and not self.q
            and not self.context
        )

    @property
    def context_match(self) -> dict[str, int | str]:
        """The context the lines must contain (`context @> this`)."""
        return {CONTEXT_FILTERS[name][0]: value for name, value in self.context}

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
        params.update((name, str(value)) for name, value in self.context)
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
    # The scan stopped at SCAN_BUDGET before the page filled: the cursor in the page's
    # direction goes on from where it stopped, and more matches may lie beyond it.
    partial: bool = False


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
        min_level=parse_level(level_raw) if level_raw else None,
        since=since,
        until=until,
        q=q,
        context=parse_context(params),
    )


def parse_context(params) -> tuple[tuple[str, int | str], ...]:
    """The context filters given (`image=3`, `worker=w1`), in a fixed order."""
    found: list[tuple[str, int | str]] = []
    for name, (_, kind) in CONTEXT_FILTERS.items():
        if kind is int:
            value = parse_int(params, name, minimum=1)
            if value is not None:
                found.append((name, value))
            continue
        text = text_param(params, name).strip()
        if len(text) > MAX_CONTEXT_TEXT:
            raise BadLogQuery({name: f"must be at most {MAX_CONTEXT_TEXT} characters"})
        if text:
            found.append((name, text))
    return tuple(found)


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


def word_query(q: str) -> str | None:
    """A tsquery for the lines holding every word of `q` at a word's start; None if no word.

    The words are what PostgreSQL's parser makes of `q` (the index's own parser), each a
    prefix (`'434':*`): `q` may end, or sit, in the middle of a longer token of the line.
    """
    with connection.cursor() as cursor:
        cursor.execute(_WORDS_SQL, [SEARCH_CONFIG, q])
        words = cursor.fetchone()[0]
    if not words:
        return None
    quoted = (word.replace("\\", "\\\\").replace("'", "''") for word in words)
    return " & ".join(f"'{word}':*" for word in quoted)


@dataclass(frozen=True)
class Scope:
    """Whose lines: one job's, or those of the jobs a queryset of job ids yields."""

    job_id: int | None = None
    job_ids: QuerySet | None = None
    fields: tuple[str, ...] = ROW_FIELDS

    @classmethod
    def job(cls, job_id: int) -> Scope:
        return cls(job_id=job_id)

    @classmethod
    def jobs(cls, job_ids: QuerySet) -> Scope:
        return cls(job_ids=job_ids, fields=(*ROW_FIELDS, "job_id"))

    def lines(self) -> QuerySet:
        if self.job_id is not None:
            return JobLog.objects.of_job(self.job_id)
        return JobLog.objects.filter(job_id__in=self.job_ids)


def candidate_lines(scope: Scope, filters: LogFilters, words: str | None) -> QuerySet:
    """The lines the indexes can narrow down to: by words of `q` and by context."""
    lines = scope.lines()
    if words is not None:
        lines = lines.filter(RawSQL(_MATCHES_WORDS, (words,), output_field=BooleanField()))
    if filters.context:
        match = filters.context_match
        image = match.pop(IMAGE_KEY, None)
        if match:
            lines = lines.filter(context__contains=match)
        if image is not None:
            # A line about one image names it in `image_id`; a line about a batch of images
            # (`Saved 16 images`) lists them in `image_ids`. Both are index lookups.
            lines = lines.filter(
                Q(context__contains={IMAGE_KEY: image})
                | Q(context__contains={IMAGE_LIST_KEY: [image]})
            )
    return lines


def filtered_lines(scope: Scope | int, filters: LogFilters, words: str | None = None) -> QuerySet:
    """The lines matching `filters` (`words`: `word_query(filters.q)`, narrows `q` first)."""
    if isinstance(scope, int):
        scope = Scope.job(scope)
    lines = candidate_lines(scope, filters, words)
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
    """One page of the job's lines below `horizon`, newest first unless `after` was given.

    Call with an H from `log_horizon` returned before this call: the rows' snapshot must be
    taken after H's.
    """
    return fetch_scope_page(Scope.job(job_id), request, horizon)


def fetch_scope_page(scope: Scope, request: LogPageRequest, horizon: int) -> LogPage:
    """`fetch_page` over the lines of a scope (one job, or many: every line has a job_id)."""
    top = Cursor(horizon, 0)
    if request.ascending:
        low, high = request.after, top
    else:
        low, high = START, top if request.before is None else min(top, request.before)
    stopped_at = None
    if request.filters.is_empty:
        rows = _scan(scope, request, None, low, high, request.limit)
    else:
        words = word_query(request.filters.q) if request.filters.q else None
        rows, stopped_at = _scan_in_windows(scope, request, words, low, high)
    return paginate([row_dict(row) for row in rows], request, horizon, stopped_at)


def _scan(
    scope: Scope, request: LogPageRequest, words: str | None, low: Cursor, high: Cursor, limit: int
) -> list:
    lines = between(filtered_lines(scope, request.filters, words), low, high)
    return list(in_order(lines, request.ascending).values(*scope.fields)[:limit])


def _scan_in_windows(
    scope: Scope, request: LogPageRequest, words: str | None, low: Cursor, high: Cursor
) -> list:
    """Filtered scans over consecutive windows of candidate lines, in page order.

    Candidates are the lines the indexes narrow the filters to (the words of `q`, the
    context), else every line of the scope. PostgreSQL cannot estimate how many of them
    match the rest (the exact text of `q`, a rare level), and for a guessed handful of
    matches it prefers reading the whole table and sorting. Bounding each query to the next
    candidates keeps every scan short and stops soon after the page is full; windows
    double, so a rare match costs a handful of queries, not one per window. Each window
    is scanned whole, so a page never skips a match inside the range it covers.

    Return the rows, and where the scan stopped if SCAN_BUDGET candidates were scanned
    before the page filled (None: it reached its bound).
    """
    rows: list[dict] = []
    positions = candidate_lines(scope, request.filters, words).values_list("txid", "id")
    size, scanned = FILTER_WINDOW, 0
    while len(rows) < request.limit and low < high:
        if scanned >= SCAN_BUDGET:
            return rows, low if request.ascending else high
        window = in_order(between(positions, low, high), request.ascending)
        found = window[size - 1 : size].first()
        edge = Cursor(*found) if found else None
        scanned += size
        size *= 2
        wanted = request.limit - len(rows)
        if request.ascending:
            rows += _scan(scope, request, words, low, edge.successor() if edge else high, wanted)
            low = edge or high
        else:
            rows += _scan(scope, request, words, edge.predecessor() if edge else low, high, wanted)
            high = edge or low
        if edge is None:
            break
    return rows, None


def paginate(
    rows: list[dict], request: LogPageRequest, horizon: int, stopped_at: Cursor | None = None
) -> LogPage:
    """The page and its cursors. A short page scanned everything up to its bound, unless its
    scan stopped early (`stopped_at`, exclusive): then the cursor goes on from there."""
    full = len(rows) == request.limit
    partial = not full and stopped_at is not None
    top = Cursor(horizon, 0)
    if request.ascending:
        if full:
            newer = Cursor.parse(rows[-1]["cursor"])
        elif partial:
            newer = stopped_at
        else:
            newer = max(request.after, Cursor.below_horizon(horizon))
        if rows:
            older = Cursor.parse(rows[0]["cursor"])
        else:
            older = request.after.successor() if request.after > START else None
        return LogPage(rows, horizon, newer, older, partial)
    # Newest first: everything matching between the page and its upper bound was scanned.
    bound = top if request.before is None else min(top, request.before)
    older = Cursor.parse(rows[-1]["cursor"]) if full else stopped_at
    return LogPage(rows, horizon, bound.predecessor(), older, partial)


def row_dict(row: dict[str, Any]) -> dict[str, Any]:
    job = {"job_id": row["job_id"]} if "job_id" in row else {}
    return {
        **job,
        "id": row["id"],
        "cursor": str(Cursor.of(row)),
        "created_at": row["created_at"].isoformat(),
        "level": row["level"],
        "level_name": logging.getLevelName(row["level"]),
        "message": row["message"],
        "context": row["context"],
    }
