"""Hostile values in every query parameter of every GET route under /api/: never a 500.

Routes and parameters come from the OpenAPI schema and the URLconf (`api_routes`), so a
new endpoint is covered without editing this file. Values are sent raw, percent-encoding
and all (`%C2%B2`, `%00`, `%ff`, `%`), as a browser or a fuzzer would.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator

import pytest
from django.test import Client

from ami.jobs.lifecycle import create_job
from ami.jobs.locking import transition
from ami.jobs.states import JobStatus
from ami.main.models import SourceImage
from tests.support import api_routes, hostile
from tests.support.logs import add_lines
from tests.support.shared_rows import committed_rows, flush_databases, signed_in_member

# The requests only read the rows `targets` commits once for the module (see
# tests/support/shared_rows.py): not transactional, no flush after each test. Whatever a
# request writes on this thread's connection is rolled back after its test.
pytestmark = [
    pytest.mark.django_db(databases="__all__"),
    pytest.mark.usefixtures("fresh_log_backend"),
]

ROUTES = api_routes.get_routes()
ALWAYS_SENT = ["format"]  # DRF reads `?format=` on every view it serves
PARAM = re.compile(r"\{(\w+)\}")


@pytest.fixture(scope="module")
def targets(django_db_setup, django_db_blocker) -> Iterator[dict[str, str]]:
    """Ids of real objects the member may see, by the resource a route names, and the
    member's session cookie: committed once for the module (the async log views read
    them on connections of their own, in executor threads)."""
    try:
        with committed_rows(django_db_blocker):
            rows = signed_in_member()  # a committed session: requests on other threads find it
            project, pipeline = rows.project, rows.pipeline
            images = [
                SourceImage.objects.create(project=project, path=f"img/{i:04d}.png")
                for i in range(5)
            ]
            job = create_job(project, pipeline, "fuzzed job", {"limit": 5})
            add_lines(job, 20)
            transition(job.pk, JobStatus.STARTED)
            transition(job.pk, JobStatus.SUCCESS)  # a final job: the log stream ends
        yield {
            "jobs": str(job.pk),
            "projects": str(project.pk),
            "images": str(images[0].pk),
            "pipelines": str(pipeline.pk),
            "sessionid": rows.session_cookie["sessionid"],
        }
    finally:
        # Async log views under the test client open connections in short-lived executor
        # threads; collect them so they close before the test database is dropped.
        gc.collect()
        flush_databases(django_db_blocker)


def fill(route: str, targets: dict[str, str]) -> str:
    """The route with each path parameter replaced by the id of the resource before it."""

    def value(match: re.Match) -> str:
        before = route[: match.start()].rstrip("/").rsplit("/", 1)[-1]
        return targets.get(before, "1")

    return PARAM.sub(value, route)


def test_every_get_route_is_enumerated():
    """The enumeration cannot silently shrink to nothing (that would make the fuzz vacuous)."""
    assert "level" in ROUTES["/api/jobs/{id}/logs/"]
    assert "q" in ROUTES["/api/jobs/{id}/logs/stream"]
    assert "/api/jobs/{id}/logs/download" in ROUTES


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_hostile_query_values_never_answer_500(route, targets):
    client = Client()
    client.cookies["sessionid"] = targets["sessionid"]
    path = fill(route, targets)
    failures = []
    for name in sorted({*ROUTES[route], *ALWAYS_SENT}):
        for case, raw in hostile.QUERY_VALUES.items():
            try:
                status = client.get(f"{path}?{name}={raw}").status_code
            except Exception as exc:  # the test client re-raises a view's exception: a 500
                failures.append(f"?{name}= {case}: 500 {type(exc).__name__}: {str(exc)[:120]}")
                continue
            if status >= 500:
                failures.append(f"?{name}= {case}: {status}")
    assert not failures, f"GET {path}\n" + "\n".join(failures)
