"""Project-wide log search: `GET /api/logs` (pages) and `GET /api/logs/histogram`.

The same filters and `(txid, id)` cursors as one job's log (`ami.jobs.api.log_query`), over
the lines of every job the user can see (or of one of their projects): a cursor is a
position in the one order all lines share, so paging across jobs neither skips nor repeats.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from django.db.models import Count, QuerySet
from django.db.models.functions import TruncMinute
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ami.jobs.access import visible_jobs
from ami.jobs.api.cursor import Cursor
from ami.jobs.api.horizon import log_horizon
from ami.jobs.api.log_query import (
    BadLogQuery,
    LogFilters,
    Scope,
    fetch_scope_page,
    filtered_lines,
    parse_filters,
    parse_int,
    parse_page_request,
    word_query,
)
from ami.jobs.api.views import LOG_PARAMETERS, page_body
from ami.main.access import USER_AUTHENTICATION, visible_projects

MAX_BUCKETS = 10_000  # minutes in one histogram (about a week)
DEFAULT_SPAN = timedelta(hours=24)  # of a histogram given no `since`
BUCKET_SECONDS = 60

PROJECT = OpenApiParameter("project", int, description="Only this project's jobs")
PAGE_PARAMETERS = [PROJECT, *LOG_PARAMETERS]
FILTER_PARAMETERS = [PROJECT, *(p for p in LOG_PARAMETERS if p.name not in {"after", "before"})]
FILTER_PARAMETERS = [p for p in FILTER_PARAMETERS if p.name != "limit"]


def visible_job_ids(request: Request) -> QuerySet:
    """Ids of the jobs whose lines the user may read, of `project` when given; 404 if hidden."""
    jobs = visible_jobs(request.user)
    try:
        project = parse_int(request.query_params, "project", minimum=1)
    except BadLogQuery as error:
        raise ValidationError(error.errors) from None
    if project is not None:
        if not visible_projects(request.user).filter(pk=project).exists():
            raise NotFound("No such project.")
        jobs = jobs.filter(project_id=project)
    return jobs.values("id")


class SearchLineSerializer(serializers.Serializer):
    job_id = serializers.IntegerField()
    id = serializers.IntegerField()
    cursor = serializers.CharField()
    created_at = serializers.DateTimeField()
    level = serializers.IntegerField()
    level_name = serializers.CharField()
    message = serializers.CharField()
    context = serializers.JSONField()


class SearchPageSerializer(serializers.Serializer):
    results = SearchLineSerializer(many=True)
    horizon = serializers.CharField()
    newer_cursor = serializers.CharField()
    older_cursor = serializers.CharField(allow_null=True)
    partial = serializers.BooleanField()
    newer = serializers.URLField()
    older = serializers.URLField(allow_null=True)


class HistogramBucketSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    counts = serializers.DictField(child=serializers.IntegerField())


class HistogramSerializer(serializers.Serializer):
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    bucket_seconds = serializers.IntegerField()
    horizon = serializers.CharField()
    buckets = HistogramBucketSerializer(many=True)


class LogSearchView(APIView):
    """Lines of every job you can see, newest first, with the job log's cursors and filters."""

    authentication_classes = USER_AUTHENTICATION
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="log_search",
        tags=["logs"],
        parameters=PAGE_PARAMETERS,
        responses=SearchPageSerializer,
    )
    def get(self, request: Request) -> Response:
        job_ids = visible_job_ids(request)
        try:
            page_request = parse_page_request(request.query_params)
        except BadLogQuery as error:
            raise ValidationError(error.errors) from None
        page = fetch_scope_page(Scope.jobs(job_ids), page_request, log_horizon())
        return Response(page_body(request, page_request, page))


def histogram_range(filters: LogFilters) -> tuple[datetime, datetime]:
    """The histogram's [since, until]: `until` defaults to now, `since` to a day before it."""
    until = filters.until or timezone.now()
    since = filters.since or until - DEFAULT_SPAN
    if since > until:
        raise BadLogQuery({"since": "must not be later than until"})
    if (until - since) / timedelta(seconds=BUCKET_SECONDS) > MAX_BUCKETS:
        raise BadLogQuery(
            {"since": f"the range holds more than {MAX_BUCKETS} one-minute buckets; narrow it"}
        )
    return since, until


def histogram(job_ids: QuerySet, filters: LogFilters, horizon: int) -> list[dict]:
    """Lines per minute and level name, over the matching lines below `horizon`."""
    words = word_query(filters.q) if filters.q else None
    lines = filtered_lines(Scope.jobs(job_ids), filters, words).filter(txid__lt=horizon)
    counts = (
        lines.annotate(start=TruncMinute("created_at", tzinfo=UTC))
        .values("start", "level")
        .annotate(n=Count("id"))
        .order_by("start", "level")
    )
    buckets: dict[datetime, dict[str, int]] = {}
    for row in counts:
        name = logging.getLevelName(row["level"])
        bucket = buckets.setdefault(row["start"], {})
        bucket[name] = bucket.get(name, 0) + row["n"]
    return [{"start": start.isoformat(), "counts": c} for start, c in buckets.items()]


class LogHistogramView(APIView):
    """Matching lines per minute by level, over the search's filters (at most 10,000 minutes)."""

    authentication_classes = USER_AUTHENTICATION
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="log_histogram",
        tags=["logs"],
        parameters=FILTER_PARAMETERS,
        responses=HistogramSerializer,
    )
    def get(self, request: Request) -> Response:
        job_ids = visible_job_ids(request)
        try:
            filters = parse_filters(request.query_params)
            since, until = histogram_range(filters)
        except BadLogQuery as error:
            raise ValidationError(error.errors) from None
        bounded = replace(filters, since=since, until=until)
        horizon = log_horizon()
        return Response(
            {
                "since": since.isoformat(),
                "until": until.isoformat(),
                "bucket_seconds": BUCKET_SECONDS,
                "horizon": str(Cursor(horizon, 0)),
                "buckets": histogram(job_ids, bounded, horizon),
            }
        )
