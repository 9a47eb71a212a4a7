"""Shared fixtures. Servers are started by the `ami.services.pytest_plugin` plugin."""

from __future__ import annotations

import os

import pytest
from django.db import connections

from ami.jobs.models import Job
from ami.main.models import Project, SourceImage
from ami.ml.models import Algorithm, Pipeline


@pytest.fixture
def test_database_url(transactional_db) -> str:
    """URL of the test database, for subprocesses that must see this test's rows."""
    settings = connections["default"].settings_dict
    host, port = settings["HOST"] or "127.0.0.1", settings["PORT"] or 5432
    user = settings["USER"] or "postgres"
    password = f":{settings['PASSWORD']}" if settings["PASSWORD"] else ""
    return f"postgres://{user}{password}@{host}:{port}/{settings['NAME']}"


@pytest.fixture
def subprocess_env(test_database_url) -> dict[str, str]:
    """Environment for a subprocess that uses this test's database and servers."""
    return {**os.environ, "DATABASE_URL": test_database_url}


@pytest.fixture
def project(db) -> Project:
    return Project.objects.create(name="Test project")


@pytest.fixture
def pipeline(db) -> Pipeline:
    pipeline = Pipeline.objects.create(slug="test-pipeline", name="Test pipeline")
    pipeline.algorithms.add(
        Algorithm.objects.create(key="detector", name="Detector", task_type="detection"),
        Algorithm.objects.create(key="classifier", name="Classifier", task_type="classification"),
    )
    return pipeline


@pytest.fixture
def images(project) -> list[SourceImage]:
    return [SourceImage.objects.create(project=project, path=f"img/{i:04d}.png") for i in range(5)]


@pytest.fixture
def job(project, pipeline) -> Job:
    return Job.objects.create(project=project, pipeline=pipeline, name="Test job")
