"""What a log page costs: its queries, and JSON the same as DRF's renderer writes."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.renderers import JSONRenderer

from ami.jobs.api.views import FastJSONRenderer
from ami.jobs.log_partitions import forget_partition_keys
from ami.jobs.models import JobLog
from tests.support.logs import add_lines

pytestmark = pytest.mark.django_db(transaction=True)

# The session, its user, then one statement for the access check, the job's partition key and
# the log horizon together, then the page. Before: the job row read with the access check,
# the horizon and (once per process) the partition key, each a query of its own.
PAGE_QUERIES = ["django_session", "auth_user", "pg_snapshot_xmax", "jobs_joblog"]


def page_queries(client, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content
    assert response.json()["results"]
    return [query["sql"] for query in captured.captured_queries]


@pytest.mark.parametrize("query", ["limit=100", "before", "after"])
def test_a_page_is_four_queries(member_client, staged_job, query):
    lines = add_lines(staged_job, 30)
    middle = lines[15]
    url = f"/api/jobs/{staged_job.pk}/logs?limit=10"
    if query != "limit=100":
        url += f"&{query}={middle.txid}.{middle.id}"
    forget_partition_keys()  # a process's first page of this job costs no more
    queries = page_queries(member_client, url)
    assert len(queries) == len(PAGE_QUERIES), queries
    for sql, table in zip(queries, PAGE_QUERIES, strict=True):
        assert table in sql, (table, sql)


def test_a_job_of_another_project_is_a_404_in_the_same_queries(client_for, outsider, staged_job):
    add_lines(staged_job, 3)
    client = client_for(outsider)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(f"/api/jobs/{staged_job.pk}/logs")
    assert response.status_code == 404
    assert len(captured.captured_queries) == 3, captured.captured_queries
    for bad in ("0", "99999999999999999999", "x1"):
        assert client.get(f"/api/jobs/{bad}/logs").status_code == 404


def test_json_is_drf_renderers_bytes(member_client, staged_job):
    tricky = 'tab\there, quote " back\\slash, \u2028\u2029 separators, é, \x01, 😀'
    JobLog.objects.create(
        job=staged_job,
        job_partition_key=staged_job.log_partition_key,
        message=tricky,
        context={"nested": [1, None, True, "\u2028"], "big": 2**62},
    )
    response = member_client.get(f"/api/jobs/{staged_job.pk}/logs")
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["results"][0]["message"] == tricky
    assert response.content == JSONRenderer().render(body)
    assert b"\\u2028" in response.content and "\u2028".encode() not in response.content


def test_what_orjson_refuses_falls_back_to_drf():
    huge = {"context": {"n": 2**70}, "s": "\u2029"}
    assert FastJSONRenderer().render(huge) == JSONRenderer().render(huge)
    assert json.loads(FastJSONRenderer().render(huge)) == huge
    indented = FastJSONRenderer().render(huge, "application/json; indent=2")
    assert indented == JSONRenderer().render(huge, "application/json; indent=2")
