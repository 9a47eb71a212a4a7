"""Projects and their images, read-only, limited to the projects the user belongs to."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination

from ami.jobs.api.access import USER_AUTHENTICATION, visible_images, visible_projects
from ami.main.models import Project, SourceImage


class Pagination(LimitOffsetPagination):
    default_limit = 100
    max_limit = 1000


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
        project = self.request.query_params.get("project")
        if project:
            if not project.isdigit():
                raise ValidationError({"project": f"must be a project id, got {project!r}"})
            images = images.filter(project_id=int(project))
        return images
