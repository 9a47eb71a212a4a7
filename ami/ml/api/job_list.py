"""`GET /api/v2/jobs`: the jobs a processing service may work on (those of its projects),
as it polls for them.

Filters (every one checked before any query; a malformed one is a 400 naming it):
`pipeline__slug__in=a,b`, `pipeline__slug=a`, `project=ID`, `incomplete_only=1` (not final),
`ids_only=1` (only `id` and `pipeline_slug`), `dispatch_mode=` / `backend=` (every job here
is dispatched as `async_api`, so another value matches none), `limit`, `offset`.
Other parameters older clients send (`processing_service_name`) are ignored.
"""

from __future__ import annotations

from django.db.models import QuerySet
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from ami.jobs.api.log_query import BadLogQuery, text_param
from ami.jobs.models import Job
from ami.jobs.states import FINAL_STATES
from ami.main.api import MAX_ID, Pagination, query_int
from ami.ml.access import jobs_for_service
from ami.ml.api.processing import ProcessingServiceView
from ami.ml.api.schema import JOB_LIST_PARAMETERS, protocol

ASYNC_API = "async_api"  # the protocol's dispatch mode of a job whose tasks are pulled
MAX_SLUGS = 100
MAX_SLUG_LENGTH = 100
BOOLEANS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


class JobListItem(serializers.ModelSerializer):
    pipeline_slug = serializers.CharField(source="pipeline.slug", default=None)

    class Meta:
        model = Job
        fields = ["id", "pipeline_slug"]


class JobListDetail(JobListItem):
    dispatch_mode = serializers.SerializerMethodField()

    class Meta(JobListItem.Meta):
        fields = [
            "id", "pipeline_slug", "project", "name", "status", "dispatch_mode",
            "created_at", "started_at", "finished_at",
        ]  # fmt: skip

    def get_dispatch_mode(self, job: Job) -> str:
        return ASYNC_API


def text(params, name: str) -> str:
    try:
        return text_param(params, name)
    except BadLogQuery as error:
        raise ValidationError(error.errors) from None


def boolean(params, name: str) -> bool:
    raw = text(params, name)
    if raw == "":
        return False
    value = BOOLEANS.get(raw.lower())
    if value is None:
        raise ValidationError({name: f"must be 1 or 0 (true or false), got {raw[:40]!r}"})
    return value


def slugs(params, name: str) -> list[str] | None:
    raw = text(params, name)
    if raw == "":
        return None
    values = [value.strip() for value in raw.split(",") if value.strip()]
    if len(values) > MAX_SLUGS:
        raise ValidationError({name: f"at most {MAX_SLUGS} slugs"})
    if any(len(value) > MAX_SLUG_LENGTH for value in values):
        raise ValidationError({name: f"a slug is at most {MAX_SLUG_LENGTH} characters"})
    return values


def filtered_jobs(jobs: QuerySet[Job], params) -> QuerySet[Job]:
    """The jobs among `jobs` matching the query parameters, oldest first."""
    jobs = jobs.select_related("pipeline").order_by("id")
    for name in ("pipeline__slug__in", "pipeline__slug"):
        wanted = slugs(params, name)
        if wanted is not None:
            jobs = jobs.filter(pipeline__slug__in=wanted)
    project = query_int(params, "project", minimum=1, maximum=MAX_ID)
    if project is not None:
        jobs = jobs.filter(project_id=project)
    if boolean(params, "incomplete_only"):
        jobs = jobs.exclude(status__in=list(FINAL_STATES))
    for name in ("dispatch_mode", "backend"):
        mode = text(params, name)
        if mode not in ("", ASYNC_API):
            jobs = jobs.none()
    return jobs


class JobListView(ProcessingServiceView):
    @protocol("Jobs to work on", parameters=JOB_LIST_PARAMETERS)
    def get(self, request: Request) -> Response:
        params = request.query_params
        jobs = filtered_jobs(jobs_for_service(self.service), params)
        serializer = JobListItem if boolean(params, "ids_only") else JobListDetail
        paginator = Pagination()
        page = paginator.paginate_queryset(jobs, request, view=self)
        return paginator.get_paginated_response(serializer(page, many=True).data)
