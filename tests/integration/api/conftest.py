"""Users, clients and log rows for the API tests."""

from __future__ import annotations

import logging

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from ami.jobs.lifecycle import create_job
from ami.jobs.models import Job, JobLog
from ami.main.models import Project
from tests.asgi_server import asgi_server  # noqa: F401  (a fixture)

LEVELS = [logging.DEBUG, logging.INFO, logging.INFO, logging.WARNING, logging.ERROR]


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
def staged_job(project, pipeline) -> Job:
    return create_job(project, pipeline, "Staged job", {"limit": 5})


def add_lines(job: Job, count: int, *, start: int = 0) -> list[JobLog]:
    """`count` lines `line N` cycling through DEBUG..ERROR; returns them in (txid, id) order."""
    created = JobLog.objects.bulk_create(
        JobLog(job=job, level=LEVELS[i % len(LEVELS)], message=f"line {i}", context={"i": i})
        for i in range(start, start + count)
    )
    return list(JobLog.objects.filter(id__in=[line.id for line in created]).order_by("txid", "id"))


def cursor_of(line: JobLog) -> str:
    """The cursor string the API gives for `line`."""
    return f"{line.txid}.{line.id}"


@pytest.fixture
def session_cookie(member) -> dict[str, str]:
    client = Client()
    client.force_login(member)
    return {"sessionid": client.cookies["sessionid"].value}
