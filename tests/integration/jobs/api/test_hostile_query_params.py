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
from tests.support import api_routes, hostile
from tests.support.logs import add_lines

pytestmark = [
    pytest.mark.django_db(transaction=True, databases="__all__"),
    pytest.mark.usefixtures("fresh_log_backend"),
]

ROUTES = api_routes.get_routes()
ALWAYS_SENT = ["format"]  # DRF reads `?format=` on every view it serves
PARAM = re.compile(r"\{(\w+)\}")


@pytest.fixture
def targets(project, pipeline, images, member) -> Iterator[dict[str, str]]:
    """Ids of real objects the member may see, by the resource a route names."""
    job = create_job(project, pipeline, "fuzzed job", {"limit": 5})
    add_lines(job, 20)
    transition(job.pk, JobStatus.STARTED)
    transition(job.pk, JobStatus.SUCCESS)  # a final job: the log stream ends
    yield {
        "jobs": str(job.pk),
        "projects": str(project.pk),
        "images": str(images[0].pk),
        "pipelines": str(pipeline.pk),
    }
    # Async log views under the test client open connections in short-lived executor
    # threads; collect them so they close before the test database is dropped.
    gc.collect()


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
def test_hostile_query_values_never_answer_500(route, targets, member):
    client = Client()
    client.force_login(member)
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
