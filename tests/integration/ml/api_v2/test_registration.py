"""Contract: listing projects and registering pipelines, as a service's `register` does."""

from __future__ import annotations

import pytest

from ami.main.models import Project
from ami.ml.models import Algorithm, Pipeline, ProcessingService

pytestmark = pytest.mark.django_db(transaction=True)


def pipeline_config(slug: str = "moths_2024", version: int = 1, **extra) -> dict:
    """A `PipelineConfigResponse` with every field a real client sends."""
    return {
        "name": "Moths 2024",
        "slug": slug,
        "version": version,
        "description": "Detector and species classifier",
        "algorithms": [
            {
                "name": "Moth detector",
                "key": "moth_detector_2024",
                "description": None,
                "task_type": "localization",
                "version": 2,
                "version_name": "v2",
                "uri": "https://example.org/weights.pt",
                "category_map": None,
            },
            {
                "name": "Species classifier",
                "key": "species_2024",
                "task_type": "classification",
                "version": 1,
                "category_map": {
                    "data": [{"label": "Moth", "index": 0, "gbif_key": 1234}],
                    "labels": ["Moth", "Not a moth"],
                    "version": None,
                    "description": None,
                    "uri": None,
                },
                "trainable": False,
            },
            {"name": "Features", "key": "embedding_2024", "task_type": "embedding"},
        ],
        "stages": [{"key": "detect", "name": "Detect", "params": [], "description": None}],
        **extra,
    }


def test_projects_are_listed_in_the_drf_shape(service, project):
    second = Project.objects.create(name="Second")
    ProcessingService.objects.get(name="contract service").projects.add(second)
    Project.objects.create(name="Not the service's")
    body = service.get("/api/v2/projects/").json()
    assert set(body) >= {"results", "count", "next", "previous"}
    assert [(p["id"], p["name"]) for p in body["results"]][0] == (project.pk, project.name)
    assert body["count"] == 2 and body["next"] is None
    assert service.get("/api/v2/projects").status_code == 200


def test_registration_creates_then_updates(service, project):
    url = f"/api/v2/projects/{project.pk}/pipelines/"
    body = {
        "processing_service_name": "AMI Data Companion (gpu-box)",
        "pipelines": [pipeline_config()],
        "client_info": {"hostname": "gpu-box", "software": "ami-data-companion",
                        "version": "0.6.0", "platform": "Linux"},
    }  # fmt: skip
    created = service.post(url, body, format="json")
    assert created.status_code == 201, created.content
    summary = created.json()
    service_row = ProcessingService.objects.get(name="contract service")
    assert summary == {
        "pipelines_created": ["moths_2024"],
        "pipelines_updated": [],
        "processing_service_id": service_row.pk,
    }
    pipeline = Pipeline.objects.get(slug="moths_2024")
    assert list(pipeline.projects.all()) == [project]
    keys = dict(pipeline.algorithms.values_list("key", "task_type"))
    assert keys == {
        "moth_detector_2024": "detection",
        "species_2024": "classification",
        "embedding_2024": "other",
    }
    assert Algorithm.objects.get(key="moth_detector_2024").version == "2"
    assert service_row.reported_name == "AMI Data Companion (gpu-box)"
    assert service_row.client_info["hostname"] == "gpu-box"

    config = pipeline_config(version=2)
    config["algorithms"] = config["algorithms"][:1]
    again = service.post(url, {"pipelines": [config]}, format="json")  # the API-key branch
    assert again.status_code == 200
    assert again.json()["pipelines_created"] == []
    assert again.json()["pipelines_updated"] == ["moths_2024"]
    pipeline.refresh_from_db()
    assert pipeline.version == 2
    assert list(pipeline.algorithms.values_list("key", flat=True)) == ["moth_detector_2024"]


def test_registration_of_an_unknown_project_is_a_404(service):
    response = service.post("/api/v2/projects/999999/pipelines/", {"pipelines": []}, format="json")
    assert response.status_code == 404
    assert response.json() == {"detail": "Project not found"}


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda c: c.update(slug="no spaces"), "pipelines.0.slug"),
        (lambda c: c.update(version="two"), "pipelines.0.version"),
        (lambda c: c.pop("name"), "pipelines.0.name"),
        (lambda c: c["algorithms"][0].update(key=7), "pipelines.0.algorithms.0.key"),
        (lambda c: c["algorithms"][0].update(name="a\x00b"), "pipelines.0.algorithms.0.name"),
        (lambda c: c["algorithms"][1].update(category_map=[1]),
         "pipelines.0.algorithms.1.category_map"),
        (lambda c: c.update(algorithms={"not": "a list"}), "pipelines.0.algorithms"),
    ],
)  # fmt: skip
def test_wrong_types_of_fields_we_use_are_a_400_naming_them(service, project, mutate, field):
    config = pipeline_config()
    mutate(config)
    url = f"/api/v2/projects/{project.pk}/pipelines/"
    response = service.post(url, {"pipelines": [config]}, format="json")
    assert response.status_code == 400, response.content
    assert field in [error["field"] for error in response.json()["errors"]]
    assert not Pipeline.objects.filter(slug="moths_2024").exists()


def test_client_info_that_postgres_cannot_store_is_a_400(service, project):
    url = f"/api/v2/projects/{project.pk}/pipelines/"
    response = service.post(url, {"client_info": {"hostname": "a\x00b"}}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "client_info"
