"""Registering a processing service's pipelines: create or update pipelines and algorithms."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from ami.main.models import Project
from ami.ml.models import Algorithm, Pipeline, ProcessingService

# The protocol's task types; detection and classification are the ones results use.
TASK_TYPES = {
    "detection": Algorithm.TaskType.DETECTION,
    "localization": Algorithm.TaskType.DETECTION,
    "classification": Algorithm.TaskType.CLASSIFICATION,
}


@dataclass(frozen=True)
class AlgorithmSpec:
    key: str
    name: str
    version: int
    task_type: str | None
    description: str


@dataclass(frozen=True)
class PipelineSpec:
    slug: str
    name: str
    version: int
    description: str
    algorithms: list[AlgorithmSpec]


@dataclass(frozen=True)
class Registered:
    created: list[str]
    updated: list[str]


def register_pipelines(
    project: Project,
    pipelines: list[PipelineSpec],
    service: ProcessingService,
    reported_name: str | None,
    client_info: dict | None,
) -> Registered:
    """Create or update each pipeline (by slug) and its algorithms (by key), in one
    transaction; add the project to each; record what the service said about itself."""
    created, updated = [], []
    with transaction.atomic():
        for spec in pipelines:
            algorithms = [_algorithm(a) for a in spec.algorithms]
            pipeline, new = Pipeline.objects.update_or_create(
                slug=spec.slug,
                defaults={
                    "name": spec.name,
                    "version": spec.version,
                    "description": spec.description,
                },
            )
            pipeline.algorithms.set(algorithms)
            pipeline.projects.add(project)
            (created if new else updated).append(spec.slug)
        changes = {"registered_at": timezone.now()}
        if reported_name:
            changes["reported_name"] = reported_name
        if client_info is not None:
            changes["client_info"] = client_info
        ProcessingService.objects.filter(pk=service.pk).update(**changes)
    return Registered(created, updated)


def _algorithm(spec: AlgorithmSpec) -> Algorithm:
    task_type = TASK_TYPES.get((spec.task_type or "").lower(), Algorithm.TaskType.OTHER)
    algorithm, _ = Algorithm.objects.update_or_create(
        key=spec.key,
        defaults={
            "name": spec.name,
            "version": str(spec.version),
            "task_type": task_type,
            "description": spec.description,
        },
    )
    return algorithm
