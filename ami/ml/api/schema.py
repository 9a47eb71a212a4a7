"""OpenAPI descriptions of the processing-service protocol's views (drf-spectacular)."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers

TAG = "processing services (v2)"


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "ami.ml.api.authentication.ProcessingServiceAuthentication"
    name = "ProcessingServiceApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>` (older clients: `Token <key>`)",
        }


def protocol(summary: str, *, body: bool = False, parameters=()) -> object:
    """`extend_schema` for a protocol view: free-form JSON in and out (see docs/api.md)."""
    return extend_schema(
        summary=summary,
        tags=[TAG],
        request=OpenApiTypes.OBJECT if body else None,
        responses={200: OpenApiTypes.OBJECT},
        parameters=list(parameters),
    )


JOB_LIST_PARAMETERS = [
    OpenApiParameter("pipeline__slug__in", str, description="Comma-separated pipeline slugs"),
    OpenApiParameter("pipeline__slug", str, description="One pipeline slug (older clients)"),
    OpenApiParameter("project", int),
    OpenApiParameter("ids_only", str, enum=["1", "0", "true", "false"]),
    OpenApiParameter("incomplete_only", str, enum=["1", "0", "true", "false"]),
    OpenApiParameter("dispatch_mode", str, description="`async_api` (others match no job)"),
    OpenApiParameter("backend", str, description="Older name of `dispatch_mode`"),
    OpenApiParameter("limit", int),
    OpenApiParameter("offset", int),
]


_LOG_LINE = inline_serializer(
    "ServiceLogLine",
    {
        "level": serializers.CharField(
            required=False, help_text="DEBUG, INFO, WARNING, ERROR, CRITICAL, or 0-50"
        ),
        "message": serializers.CharField(max_length=10_000),
        "timestamp": serializers.DateTimeField(required=False),
        "context": serializers.DictField(required=False),
    },
)
log_post_schema = extend_schema(
    summary="Add lines to the job's log (batched, rate-limited per service)",
    tags=[TAG],
    request=inline_serializer(
        "ServiceLogPost", {"logs": serializers.ListField(child=_LOG_LINE, max_length=100)}
    ),
    responses={
        200: OpenApiTypes.OBJECT,
        400: OpenApiTypes.OBJECT,
        404: OpenApiTypes.OBJECT,
        413: OpenApiTypes.OBJECT,
        429: OpenApiTypes.OBJECT,
    },
)
