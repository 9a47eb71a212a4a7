"""Pipelines, read-only: what a user may choose when creating a job."""

from __future__ import annotations

from rest_framework import serializers, viewsets

from ami.main.access import USER_AUTHENTICATION
from ami.ml.models import Algorithm, Pipeline


class AlgorithmSerializer(serializers.ModelSerializer):
    class Meta:
        model = Algorithm
        fields = ["id", "key", "name", "version", "task_type"]


class PipelineSerializer(serializers.ModelSerializer):
    algorithms = AlgorithmSerializer(many=True, read_only=True)

    class Meta:
        model = Pipeline
        fields = ["id", "slug", "name", "description", "algorithms"]


class PipelineViewSet(viewsets.ReadOnlyModelViewSet):
    """Pipelines are shared by all projects; any signed-in user may list them."""

    authentication_classes = USER_AUTHENTICATION
    serializer_class = PipelineSerializer
    queryset = Pipeline.objects.prefetch_related("algorithms").order_by("id")
