"""Hostile query parameters on every endpoint of ami/jobs/api: a 400 naming it, never a 500.

Served by a real uvicorn process, raw query strings (percent escapes as a client sends them).
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest

from ami.jobs.lifecycle import create_job
from tests.support.shared_rows import committed_rows, flush_databases, signed_in_member

# The ~500 tests only send requests to the server, about rows created once for the module
# (`shared`; see tests/support/shared_rows.py). Not transactional: no flush after each. The
# mark still matters: pytest-django sets up the test database only for marked tests.
pytestmark = pytest.mark.django_db

HOSTILE = {
    "superscript two": "%C2%B2",  # "²".isdigit() is True, int("²") fails
    "arabic digit": "%D9%A3",  # int() takes it, PostgreSQL does not see it as a number
    "NUL": "%00",
    "lone surrogate": "%ED%A0%80",
    "invalid UTF-8": "%ff",
    "huge number": "9" * 30,
    "huge negative": "-" + "9" * 30,
    "more digits than int() takes": "9" * 5000,
    "exponent": "1e999",
}
CONTEXT_IDS = ["image", "processing_service"]
CONTEXT_TEXT = ["worker", "stage"]
NUMBERS = {  # endpoint (after /api/jobs/, or from /api/) -> its integer parameters
    "": ["project", "pipeline", "limit", "offset"],
    "{id}/": ["logs_limit"],
    "{id}/logs": ["limit", *CONTEXT_IDS],
    "{id}/logs/stream": ["tail", *CONTEXT_IDS],
    "{id}/logs/download": CONTEXT_IDS,
    "/api/logs": ["project", "limit", *CONTEXT_IDS],
    "/api/logs/histogram": ["project", *CONTEXT_IDS],
}
TEXT = {  # parameters whose value may be any text, except what PostgreSQL cannot take
    "": ["status"],
    "{id}/logs": ["level", "q", "since", "until", "after", "before", *CONTEXT_TEXT],
    "{id}/logs/stream": ["level", "q", "since", "until", "after", *CONTEXT_TEXT],
    "{id}/logs/download": ["level", "q", "since", "until", "format", *CONTEXT_TEXT],
    "/api/logs": ["level", "q", "since", "until", "after", "before", *CONTEXT_TEXT],
    "/api/logs/histogram": ["level", "q", "since", "until", *CONTEXT_TEXT],
}
ALWAYS_BAD = {"level", "since", "until", "after", "before", "format", "status"}


def cases():
    for endpoint, names in NUMBERS.items():
        for name in names:
            for label, value in HOSTILE.items():
                yield pytest.param(endpoint, name, value, True, id=f"{endpoint}?{name}={label}")
    for endpoint, names in TEXT.items():
        for name in names:
            for label, value in HOSTILE.items():
                bad = name in ALWAYS_BAD or label == "NUL"
                yield pytest.param(endpoint, name, value, bad, id=f"{endpoint}?{name}={label}")


@dataclass(frozen=True)
class Shared:
    job_id: int
    session_cookie: dict[str, str]


@pytest.fixture(scope="module")
def shared(django_db_setup, django_db_blocker):
    """A staged job of a project whose member is signed in, committed once for the module.

    The same rows the `staged_job` and `session_cookie` fixtures make, which each of these
    tests used to make (and flush) for itself: 0.15 s a test, over a minute for the module.
    The requests only read them."""
    try:
        with committed_rows(django_db_blocker):
            rows = signed_in_member()
            job = create_job(rows.project, rows.pipeline, "Staged job", {"limit": 5})
        yield Shared(job.pk, rows.session_cookie)
    finally:
        flush_databases(django_db_blocker)


@pytest.fixture(scope="module")
def http(asgi_server, shared):
    """One client for the module (a new one loads its TLS settings: 25 ms, times 520 tests); each
    test's response is closed when its `with` ends, read or not."""
    base, _ = asgi_server
    with httpx.Client(base_url=base, cookies=shared.session_cookie, timeout=30) as client:
        yield client


@pytest.mark.parametrize(("endpoint", "name", "value", "must_be_400"), list(cases()))
def test_hostile_parameters_are_a_400_naming_them(http, shared, endpoint, name, value, must_be_400):
    path = endpoint if endpoint.startswith("/") else f"/api/jobs/{endpoint}"
    url = f"{path.format(id=shared.job_id)}?{name}={value}"
    with http.stream("GET", url) as response:
        if response.status_code == 200 and not must_be_400:
            return  # valid after all (a search for "�", say); the stream is left unread
        assert response.status_code == 400, (url, response.status_code)
        response.read()
        assert name in response.json(), response.text


@pytest.mark.parametrize("path", ["logs", "logs/download", "logs/stream"])
def test_known_500s_are_400s(http, shared, path):
    base = f"/api/jobs/{shared.job_id}/{path}"
    for query, name in [("level=%C2%B2", "level"), ("q=%00", "q")]:
        response = http.get(f"{base}?{query}")
        assert response.status_code == 400, query
        assert response.headers["content-type"].startswith("application/json")
        assert name in response.json()


def test_a_bad_last_event_id_is_a_400(http, shared):
    for value in ["abc", "12", "1.2.3", "9" * 40]:
        response = http.get(
            f"/api/jobs/{shared.job_id}/logs/stream",
            headers={"Last-Event-ID": value},
        )
        assert response.status_code == 400
        assert "Last-Event-ID" in response.json()
