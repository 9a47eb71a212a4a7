"""Projects and pipeline registration, as processing services see them.

`GET  /api/v2/projects/`                 the service's projects
`POST /api/v2/projects/{id}/pipelines/`  create or update the service's pipelines (404 for a
                                         project not its own)
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter
from pydantic import ValidationError
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from ami.main.api import Pagination
from ami.main.models import Project
from ami.ml.access import projects_for_service
from ami.ml.api import wire
from ami.ml.api.processing import ProcessingServiceView, invalid
from ami.ml.api.schema import protocol
from ami.ml.registry import AlgorithmSpec, PipelineSpec, register_pipelines


class ProjectPagination(Pagination):
    """Clients read only the first page: make it hold every project of a real install."""

    default_limit = 1000


class ProjectSerializer(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = ["id", "name", "description", "created_at"]


class ProjectListView(ProcessingServiceView):
    @protocol(
        "The service's projects",
        parameters=[OpenApiParameter("limit", int), OpenApiParameter("offset", int)],
    )
    def get(self, request: Request) -> Response:
        paginator = ProjectPagination()
        page = paginator.paginate_queryset(
            projects_for_service(self.service).order_by("id"), request, view=self
        )
        return paginator.get_paginated_response(ProjectSerializer(page, many=True).data)


class RegisterPipelinesView(ProcessingServiceView):
    @protocol("Register pipelines with a project", body=True)
    def post(self, request: Request, project_id: int) -> Response:
        try:
            body = wire.Registration.model_validate(request.data)
        except ValidationError as exc:
            return invalid(wire.describe(exc))
        project = projects_for_service(self.service).filter(pk=project_id).first()
        if project is None:
            return Response({"detail": "Project not found"}, status=status.HTTP_404_NOT_FOUND)
        registered = register_pipelines(
            project,
            [_spec(config) for config in body.pipelines],
            self.service,
            body.processing_service_name,
            body.client_info,
        )
        return Response(
            {
                "pipelines_created": registered.created,
                "pipelines_updated": registered.updated,
                "processing_service_id": self.service.pk,
            },
            status=status.HTTP_201_CREATED if registered.created else status.HTTP_200_OK,
        )


def _spec(config: wire.PipelineConfig) -> PipelineSpec:
    return PipelineSpec(
        slug=config.slug,
        name=config.name,
        version=config.version,
        description=config.description or "",
        algorithms=[
            AlgorithmSpec(
                key=a.key,
                name=a.name,
                version=a.version,
                task_type=a.task_type,
                description=a.description or "",
            )
            for a in config.algorithms
        ],
    )
