"""Every page is sent with a Content-Security-Policy and may not be framed."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/accounts/login/", "/api/docs/"])
def test_pages_forbid_framing_and_foreign_scripts(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response["X-Frame-Options"] == "DENY"
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in response["Content-Security-Policy"].split(";")
    )
    assert policy["script-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["object-src"] == "'none'"


def test_the_api_docs_page_runs_no_inline_script(client):
    html = client.get("/api/docs/").content.decode()
    assert "<script>" not in html
    script_url = html.split('<script src="')[-1].split('"')[0]
    assert client.get(script_url.replace("&amp;", "&")).status_code == 200
