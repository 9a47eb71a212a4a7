"""Shared fixtures. Servers are started by the `ami_lab.servers.pytest_plugin` plugin.

Fixtures used across directories live in `tests/support` and are registered here, once for
the whole run; plain helpers are imported from `tests/support` modules.
"""

from __future__ import annotations

import os

import pytest
from django.conf import settings
from django.core.management.commands import flush as flush_command
from django.db import connections
from django.test import override_settings

from ami.jobs.models import Job
from ami.main.models import Project, SourceImage
from ami.ml.models import Pipeline
from tests.support import flush, passwords
from tests.support.shared_rows import create_pipeline

pytest_plugins = ["tests.support.fixtures", "tests.support.asgi_server"]


@pytest.fixture(scope="session", autouse=True)
def _flush_by_delete():
    """Transactional tests end with DELETEs instead of a TRUNCATE, and post_migrate only when
    it has something to re-create (tests/support/flush.py)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(flush.DatabaseOperations, "sql_flush", flush.sql_flush_by_delete)
        patch.setattr(flush_command, "emit_post_migrate_signal", flush.post_migrate_unless_intact)
        yield


@pytest.fixture(scope="session", autouse=True)
def _fast_password_hashing():
    """Users' passwords hashed with one PBKDF2 iteration (tests/support/passwords.py)."""
    with override_settings(PASSWORD_HASHERS=passwords.HASHERS):
        yield


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
    return create_pipeline()


@pytest.fixture
def images(project) -> list[SourceImage]:
    return [SourceImage.objects.create(project=project, path=f"img/{i:04d}.png") for i in range(5)]


@pytest.fixture
def job(project, pipeline) -> Job:
    return Job.objects.create(project=project, pipeline=pipeline, name="Test job")


# -- Job log (issue 3) ------------------------------------------------------------------------
# A test that does not use the `logs` database keeps job log lines in memory: its job rows
# may be invisible to the log connection (uncommitted test transaction), and pytest-django
# forbids queries on an alias the test did not ask for.
@pytest.fixture(autouse=True)
def _job_log_backend_for_test(request):
    marker = request.node.get_closest_marker("django_db")
    databases = marker.kwargs.get("databases") or () if marker else ()
    if databases == "__all__" or "logs" in databases:
        yield
        return
    job_logs = {**settings.JOB_LOGS, "BACKEND": "memory", "DUAL_WRITE": False}
    with override_settings(JOB_LOGS=job_logs):
        yield
