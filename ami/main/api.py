"""Projects and their images, read-only, limited to the projects the user belongs to."""

from __future__ import annotations

import re

from django.http import QueryDict
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination

from ami.main.access import USER_AUTHENTICATION, visible_images, visible_projects
from ami.main.models import Project, SourceImage

MAX_ID = 2**63 - 1  # PostgreSQL bigint
MAX_OFFSET = 10**9  # rows; further is no real page
_ASCII_INTEGER = re.compile(r"-?[0-9]{1,19}")


def query_int(params: QueryDict, name: str, *, minimum: int, maximum: int) -> int | None:
    """An integer query parameter within bounds, None if absent or empty; else a 400 naming it.

    Only ASCII digits count: `int()` would also take `١` or ` 7 `, and `str.isdigit()`
    takes `²`, which `int()` then refuses.
    """
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if not _ASCII_INTEGER.fullmatch(raw):
        raise ValidationError({name: f"must be an integer, got {raw[:40]!r}"})
    value = int(raw)
    if not minimum <= value <= maximum:
        raise ValidationError({name: f"must be between {minimum} and {maximum}, got {value}"})
    return value


class Pagination(LimitOffsetPagination):
    """Limit/offset pages; a malformed or out-of-range limit or offset is a 400."""

    default_limit = 100
    max_limit = 1000

    def get_limit(self, request) -> int:
        limit = query_int(
            request.query_params, self.limit_query_param, minimum=1, maximum=self.max_limit
        )
        return self.default_limit if limit is None else limit

    def get_offset(self, request) -> int:
        offset = query_int(
            request.query_params, self.offset_query_param, minimum=0, maximum=MAX_OFFSET
        )
        return offset or 0


class ProjectSerializer(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = ["id", "name", "description", "created_at"]


class SourceImageSerializer(serializers.ModelSerializer):
    class Meta:
        model = SourceImage
        fields = ["id", "project", "path", "width", "height", "size", "created_at"]


class ProjectViewSet(viewsets.ReadOnlyModelViewSet):
    authentication_classes = USER_AUTHENTICATION
    serializer_class = ProjectSerializer
    pagination_class = Pagination

    def get_queryset(self):
        return visible_projects(self.request.user).order_by("id")


@extend_schema_view(list=extend_schema(parameters=[OpenApiParameter("project", int)]))
class SourceImageViewSet(viewsets.ReadOnlyModelViewSet):
    authentication_classes = USER_AUTHENTICATION
    serializer_class = SourceImageSerializer
    pagination_class = Pagination

    def get_queryset(self):
        images = visible_images(self.request.user).order_by("id")
        project = query_int(self.request.query_params, "project", minimum=1, maximum=MAX_ID)
        if project is not None:
            images = images.filter(project_id=project)
        return images
