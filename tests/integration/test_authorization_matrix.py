"""Every endpoint against every kind of caller, as `tests/support/authorization_matrix.csv`
says: HTML pages, the REST API, streams, downloads, the admin, the processing-service API.

The table must cover the URL resolver exactly: a new route without a row fails
`test_every_route_has_a_row`, a row for a route that is gone fails it too. Each cell is a
real request through Django's test client (the async views through the async client, so a
live stream is opened and closed, not read to its end) against a fresh world.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.test import AsyncClient, Client
from django.urls import resolve

from ami.jobs.lifecycle import create_job
from ami.main.models import Project, SourceImage
from ami.ml.api.images import signed_image_path
from ami.ml.models import ProcessingService
from tests.support.authorization import PRINCIPALS, Row, routes, rows

ROWS = rows()


def with_known_bugs(table: list[Row]) -> list:
    return [
        pytest.param(row, marks=pytest.mark.xfail(reason=row.note, raises=TypeError, strict=True))
        if row.note.startswith("xfail:")
        else row
        for row in table
    ]


def test_every_route_has_a_row():
    tabled = {row.route for row in ROWS}
    resolved = set(routes())
    assert sorted(resolved - tabled) == [], "routes without a row in the authorization matrix"
    assert sorted(tabled - resolved) == [], "rows for routes that no longer exist"


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.id)
def test_each_rows_url_reaches_its_route(row: Row):
    url = row.url.replace("{signed}", "x:y:z")
    for name in ("job", "project", "image", "pipeline", "group", "member_id", "own_service"):
        url = url.replace("{" + name + "}", "1")
    url = url.replace("{algorithm}", "1").replace("{project_ct}", "1")
    assert resolve(url).route.replace("^", "") == row.route.replace("^", "")


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """Before the users are made: the matrix builds a world per row."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@dataclass
class World:
    values: dict[str, str]
    clients: dict[str, tuple[Client, AsyncClient]]

    def fill(self, text: str) -> str:
        for name, value in self.values.items():
            text = text.replace("{" + name + "}", value)
        return text


@pytest.fixture
def world(project, member, outsider, pipeline, broker, tmp_path, settings) -> World:
    settings.MEDIA_ROOT = tmp_path
    image = SourceImage.objects.create(project=project, path="img/matrix.png")
    (tmp_path / "img").mkdir()
    (tmp_path / image.path).write_bytes(b"\x89PNG matrix")
    job = create_job(project, pipeline, "matrix job", {"limit": 1})
    staff = get_user_model().objects.create_superuser("staff", password=None)
    keys = {
        "own_service": service_key("own", [project]),
        "foreign_service": service_key("foreign", [Project.objects.get(name="Outsider project")]),
        "revoked_key": service_key("revoked", [project]),
    }
    ProcessingService.objects.filter(name="revoked").update(is_active=False)
    values = {
        "job": job.pk,
        "project": project.pk,
        "image": image.pk,
        "pipeline": pipeline.pk,
        "algorithm": pipeline.algorithms.first().pk,
        "group": Group.objects.create(name="matrix group").pk,
        "member_id": member.pk,
        "own_service": ProcessingService.objects.get(name="own").pk,
        "project_ct": ContentType.objects.get_for_model(Project).pk,
        "signed": signed_image_path(image.pk).rsplit("/", 1)[1],
    }
    clients = {"anonymous": (Client(), AsyncClient())}
    for name, user in (("outsider", outsider), ("member", member), ("staff", staff)):
        sync = Client()
        sync.force_login(user)
        asynchronous = AsyncClient()
        asynchronous.cookies = sync.cookies
        clients[name] = (sync, asynchronous)
    for name, key in keys.items():
        headers = {"Authorization": f"Api-Key {key}"}
        clients[name] = (Client(headers=headers), AsyncClient(headers=headers))
    return World({name: str(value) for name, value in values.items()}, clients)


def service_key(name: str, projects: list[Project]) -> str:
    service, key = ProcessingService.create_with_key(name)
    service.projects.set(projects)
    return key


def request(world: World, principal: str, row: Row) -> int:
    """The status of one real request; a streamed body is left unread.

    Not `response.close()`: outside the client's request it would close the test's database
    connection (`request_finished`)."""
    url = world.fill(row.url)
    sync, asynchronous = world.clients[principal]
    kwargs = {}
    if row.method == "POST":
        kwargs = {"data": world.fill(row.body or "{}"), "content_type": "application/json"}
    if asyncio.iscoroutinefunction(resolve(url).func):
        call = getattr(asynchronous, row.method.lower())
        response = async_to_sync(call)(url, **kwargs)
    else:
        response = getattr(sync, row.method.lower())(url, **kwargs)
    return response.status_code


@pytest.mark.django_db
@pytest.mark.parametrize("row", with_known_bugs(ROWS), ids=lambda row: row.id)
def test_each_caller_gets_the_tabled_status(row: Row, world: World):
    actual = {principal: request(world, principal, row) for principal in PRINCIPALS}
    assert actual == row.expected, ",".join(str(actual[name]) for name in PRINCIPALS)
