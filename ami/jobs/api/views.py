"""The jobs API: list, detail, create, start/cancel/retry, and the paginated log."""

from __future__ import annotations

import orjson
from django.db.models import Prefetch
from django.http import Http404, QueryDict
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from ami.jobs import lifecycle
from ami.jobs.access import visible_job_horizon, visible_jobs
from ami.jobs.api.cursor import MAX_BIGINT, Cursor
from ami.jobs.api.log_query import (
    BadLogQuery,
    LogPage,
    LogPageRequest,
    fetch_page,
    parse_int,
    parse_page_request,
    shown,
    text_param,
)
from ami.jobs.api.serializers import (
    JobCreateSerializer,
    JobDetailSerializer,
    JobSerializer,
    LogPageSerializer,
)
from ami.jobs.log_partitions import remember_partition_key
from ami.jobs.logging import legacy
from ami.jobs.models import JobStage
from ami.jobs.states import JobStatus
from ami.main.access import USER_AUTHENTICATION, visible_projects

LOGS_LIMIT_DEFAULT = legacy.MAX_LINES  # lines in the detail's legacy `logs`, as the column held
LOGS_LIMIT_MAX = 5000
LINE_SEPARATOR, PARAGRAPH_SEPARATOR = "\u2028".encode(), "\u2029".encode()


class FastJSONRenderer(JSONRenderer):
    """JSONRenderer's output made by orjson: compact, UTF-8, U+2028/U+2029 escaped.

    Pretty-printing (`Accept: application/json; indent=4`), and anything orjson refuses
    (an integer past 64 bits in a line's context), go through JSONRenderer itself.
    """

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        plain = (
            data is not None
            and self.compact
            and not self.ensure_ascii
            and self.get_indent(accepted_media_type, renderer_context or {}) is None
        )
        if plain:
            try:
                rendered = orjson.dumps(data)
            except TypeError:
                pass
            else:
                return rendered.replace(LINE_SEPARATOR, b"\\u2028").replace(
                    PARAGRAPH_SEPARATOR, b"\\u2029"
                )
        return super().render(data, accepted_media_type, renderer_context)


LOG_RENDERERS = [
    FastJSONRenderer if renderer is JSONRenderer else renderer
    for renderer in api_settings.DEFAULT_RENDERER_CLASSES
]


class JobPagination(LimitOffsetPagination):
    """Limit and offset pages; a bad `limit` or `offset` is a 400 naming it, not a default."""

    default_limit = 50
    max_limit = 500
    max_offset = 2**31 - 1  # far past any list; keeps OFFSET within PostgreSQL's bigint

    def get_limit(self, request: Request) -> int:
        limit = self._parameter(request, self.limit_query_param, 1, self.max_limit)
        return self.default_limit if limit is None else limit

    def get_offset(self, request: Request) -> int:
        offset = self._parameter(request, self.offset_query_param, 0, self.max_offset)
        return offset or 0

    @staticmethod
    def _parameter(request: Request, name: str, minimum: int, maximum: int) -> int | None:
        try:
            return parse_int(request.query_params, name, minimum=minimum, maximum=maximum)
        except BadLogQuery as error:
            raise bad_request(error) from None


LOG_PARAMETERS = [
    OpenApiParameter("after", str, description="A cursor: the lines after it, oldest first"),
    OpenApiParameter("before", str, description="A cursor: the lines before it, newest first"),
    OpenApiParameter("limit", int, description="Lines per page (default 100, at most 1000)"),
    OpenApiParameter("level", str, description="Minimum level: a name (warning) or a number"),
    OpenApiParameter("since", OpenApiTypes.DATETIME, description="Lines at or after this time"),
    OpenApiParameter("until", OpenApiTypes.DATETIME, description="Lines at or before this time"),
    OpenApiParameter(
        "q", str, description="Text the message contains, from a word's start (case-insensitive)"
    ),
    OpenApiParameter("image", int, description="Lines about this image (context `image_id`)"),
    OpenApiParameter(
        "processing_service",
        int,
        description="Lines from this processing service (context `processing_service_id`)",
    ),
    OpenApiParameter("worker", str, description="Lines from this worker (context `worker`)"),
    OpenApiParameter("stage", str, description="Lines of this stage (context `stage`)"),
]


def job_id_of(pk: str) -> int | None:
    """The job id in the URL as `get_object` reads it (`int()`), None when no job has it."""
    try:
        job_id = int(pk)
    except (TypeError, ValueError):
        return None
    return job_id if 0 < job_id <= MAX_BIGINT else None


def bad_request(error: BadLogQuery) -> ValidationError:
    return ValidationError(error.errors)


def refuse_unstartable(project_id: int, pipeline_id: int | None, params: dict) -> None:
    """Raise a 400 naming each field that keeps such a job from ever running."""
    try:
        lifecycle.check_startable(project_id, pipeline_id, params)
    except lifecycle.NotStartable as error:
        raise ValidationError(error.errors) from None


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("project", int),
            OpenApiParameter("pipeline", int),
            OpenApiParameter("status", str, enum=JobStatus.values),
        ]
    ),
    retrieve=extend_schema(
        parameters=[
            OpenApiParameter(
                "logs_limit", int, description="Newest lines in `logs` (default 1000, max 5000)"
            )
        ]
    ),
)
class JobViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    authentication_classes = USER_AUTHENTICATION
    pagination_class = JobPagination
    serializer_class = JobSerializer

    def get_queryset(self):
        jobs = visible_jobs(self.request.user).order_by("-id")
        if self.action in ("list", "retrieve"):
            jobs = jobs.prefetch_related(
                Prefetch("stages", queryset=JobStage.objects.order_by("id"))
            )
        if self.action == "list":
            jobs = self._filter(jobs, self.request.query_params)
        return jobs

    def _filter(self, jobs, params: QueryDict):
        try:
            for name in ("project", "pipeline"):
                value = parse_int(params, name, minimum=1)
                if value is not None:
                    jobs = jobs.filter(**{f"{name}_id": value})
            job_status = text_param(params, "status")
        except BadLogQuery as error:
            raise bad_request(error) from None
        if job_status:
            if job_status not in JobStatus.values:
                allowed = ", ".join(JobStatus.values)
                raise ValidationError(
                    {"status": f"unknown status {shown(job_status)}; one of {allowed}"}
                )
            jobs = jobs.filter(status=job_status)
        return jobs

    def get_serializer_class(self):
        if self.action == "retrieve":
            return JobDetailSerializer
        if self.action == "create":
            return JobCreateSerializer
        return JobSerializer

    def get_serializer_context(self) -> dict:
        context = super().get_serializer_context()
        if self.action == "retrieve":
            try:
                limit = parse_int(
                    self.request.query_params, "logs_limit", minimum=0, maximum=LOGS_LIMIT_MAX
                )
            except BadLogQuery as error:
                raise bad_request(error) from None
            context["logs_limit"] = LOGS_LIMIT_DEFAULT if limit is None else limit
        return context

    @extend_schema(request=JobCreateSerializer, responses={201: JobDetailSerializer})
    def create(self, request: Request, *args, **kwargs) -> Response:
        serializer = JobCreateSerializer(data=request.data, projects=visible_projects(request.user))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if data["start"]:
            pipeline = data.get("pipeline")
            refuse_unstartable(data["project"].pk, pipeline and pipeline.pk, data["params"])
        job = lifecycle.create_job(
            data["project"], data.get("pipeline"), data["name"], data["params"]
        )
        if data["start"]:
            lifecycle.start_job(job.pk)
        return Response(self._detail(job.pk), status=status.HTTP_201_CREATED)

    def _detail(self, job_id: int) -> dict:
        job = self.get_queryset().get(pk=job_id)
        context = {**self.get_serializer_context(), "logs_limit": LOGS_LIMIT_DEFAULT}
        return JobDetailSerializer(job, context=context).data

    def _act(self, ok: bool, job_id: int, refusal: str) -> Response:
        if not ok:
            return Response({"detail": refusal}, status=status.HTTP_409_CONFLICT)
        return Response(self._detail(job_id))

    @extend_schema(request=None, responses={200: JobDetailSerializer, 400: None, 409: None})
    @action(detail=True, methods=["post"])
    def start(self, request: Request, pk=None, format=None) -> Response:
        job = self.get_object()
        try:
            started = lifecycle.start_job(job.pk)
        except lifecycle.NotStartable as error:
            raise ValidationError(error.errors) from None
        return self._act(started, job.pk, f"job is {job.status}, not startable")

    @extend_schema(request=None, responses={200: JobDetailSerializer, 409: None})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk=None, format=None) -> Response:
        job = self.get_object()
        return self._act(lifecycle.cancel_job(job.pk), job.pk, f"job is already {job.status}")

    @extend_schema(request=None, responses={201: JobDetailSerializer, 400: None})
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk=None, format=None) -> Response:
        try:
            new_job = lifecycle.retry_job(self.get_object().pk)
        except lifecycle.NotStartable as error:
            raise ValidationError(error.errors) from None
        return Response(self._detail(new_job.pk), status=status.HTTP_201_CREATED)

    @extend_schema(parameters=LOG_PARAMETERS, responses=LogPageSerializer)
    @action(detail=True, methods=["get"], renderer_classes=LOG_RENDERERS)
    def logs(self, request: Request, pk=None, format=None) -> Response:
        job_id = job_id_of(pk)
        # The access check, the job's partition key, H and the log budget's elided count in
        # one query (`visible_jobs` then `log_horizon` were three round trips, the job row
        # read whole).
        found = None if job_id is None else visible_job_horizon(request.user, job_id)
        if found is None:
            raise Http404
        horizon, partition_key, elided_lines, elided_bytes = found
        remember_partition_key(job_id, partition_key)  # `of_job` need not look it up
        try:
            page_request = parse_page_request(request.query_params)
        except BadLogQuery as error:
            raise bad_request(error) from None
        page = fetch_page(job_id, page_request, horizon)
        body = page_body(request, page_request, page)
        body["elided_lines"], body["elided_bytes"] = elided_lines, elided_bytes
        return Response(body)


def page_body(request: Request, page_request: LogPageRequest, page: LogPage) -> dict:
    """A page with its cursors and the URLs that continue it under the same filters."""
    base = {**page_request.filters.as_params(), "limit": page_request.limit}
    if request.query_params.get("project"):
        base["project"] = request.query_params["project"]
    url = request.build_absolute_uri(request.path)

    def link(name: str, cursor: Cursor | None) -> str | None:
        if cursor is None:
            return None
        params = QueryDict(mutable=True)
        params.update({**base, name: str(cursor)})
        return f"{url}?{params.urlencode()}"

    return {
        "results": page.rows,
        "horizon": str(Cursor(page.horizon, 0)),
        "newer_cursor": str(page.newer_cursor),
        "older_cursor": None if page.older_cursor is None else str(page.older_cursor),
        "partial": page.partial,
        "newer": link("after", page.newer_cursor),
        "older": link("before", page.older_cursor),
    }
