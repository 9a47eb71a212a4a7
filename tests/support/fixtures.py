"""Fixtures shared across test directories, registered for the whole run by tests/conftest.py.

Users and clients, a job created through the lifecycle, the Celery broker, and the job log
backend. A conftest nearer a test may define a fixture of the same name; it wins there.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connections
from django.test import Client
from rest_framework.test import APIClient

from ami.jobs.lifecycle import create_job
from ami.jobs.logging.handler import get_backend, reset_backend
from ami.jobs.models import Job
from ami.main.models import Project, SourceImage
from ami.ml.orchestration import nats
from tests.support.log_settings import overriding_job_logs
from tests.support.ml import service_client, start

CELERY_QUEUES = ("ml_results", "jobs")


# -- Users and clients ------------------------------------------------------------------------
@pytest.fixture
def member(project):
    user = get_user_model().objects.create_user("member", password="pw-member")
    project.members.add(user)
    return user


@pytest.fixture
def outsider(db):
    """A user with a project of their own, not a member of `project`."""
    user = get_user_model().objects.create_user("outsider", password="pw-outsider")
    Project.objects.create(name="Outsider project").members.add(user)
    return user


@pytest.fixture
def client_for():
    def make(user) -> APIClient:
        client = APIClient()
        client.force_authenticate(user=None)
        client.force_login(user)
        return client

    return make


@pytest.fixture
def member_client(member, client_for) -> APIClient:
    return client_for(member)


@pytest.fixture
def session_cookie(member) -> dict[str, str]:
    client = Client()
    client.force_login(member)
    return {"sessionid": client.cookies["sessionid"].value}


# -- Jobs and images --------------------------------------------------------------------------
@pytest.fixture
def staged_job(project, pipeline) -> Job:
    return create_job(project, pipeline, "Staged job", {"limit": 5})


@pytest.fixture
def many_images(project) -> list[SourceImage]:
    return SourceImage.objects.bulk_create(
        SourceImage(project=project, path=f"img/{i:04d}.png") for i in range(40)
    )


@pytest.fixture
def broker():
    """The Celery broker (Redis), with the project's queues emptied before and after."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.delete(*CELERY_QUEUES)
    yield client
    client.delete(*CELERY_QUEUES)
    client.close()


# -- The job log backend ----------------------------------------------------------------------
@pytest.fixture
def fresh_log_backend():
    """A new backend for the test (no failure burst or repeat count carried over)."""
    reset_backend()
    yield
    reset_backend()
    connections["logs"].close()


@pytest.fixture
def job_log_settings():
    """`job_log_settings(BACKEND="buffered", interval=60.0)` sets `JOB_LOGS` for the rest of
    the test (see `job_logs_with`); the backend is rebuilt on its next use."""
    with overriding_job_logs() as configure:
        yield configure


@pytest.fixture
def use_backend():
    """`use_backend("buffered", interval=60.0)` switches the backend (and sets its options)
    for the rest of the test, and returns it."""
    with overriding_job_logs() as configure:

        def switch(name: str, *, dual_write: bool = False, **options: Any):
            configure(BACKEND=name, DUAL_WRITE=dual_write, **options)
            return get_backend()

        yield switch


# -- Pipelines --------------------------------------------------------------------------------
@pytest.fixture
def started_job(project, pipeline, images) -> Job:
    """A job started as the `jobs` Celery task starts one: its tasks are in real NATS."""
    job = start(create_job(project, pipeline, "five images"))
    yield job
    nats.delete_queue(job.pk)


@pytest.fixture
def service(project):
    """A client of the processing-service protocol, as a service of `project` with its own key."""
    return service_client("contract service", projects=[project])
