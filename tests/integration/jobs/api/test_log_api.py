"""`GET /api/jobs/{id}/logs`: cursors in both directions, limits and filters."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from ami.jobs.api.cursor import Cursor
from ami.jobs.models import JobLog
from tests.support.logs import add_lines, cursor_of

# Committed rows: the horizon serves lines of ended transactions only, as in production.
pytestmark = pytest.mark.django_db(transaction=True)


def get_page(client, job, query: str = "") -> dict:
    response = client.get(f"/api/jobs/{job.pk}/logs?{query}")
    assert response.status_code == 200, response.content
    return response.json()


def test_default_page_is_the_newest_lines_newest_first(member_client, staged_job):
    lines = add_lines(staged_job, 150)
    page = get_page(member_client, staged_job)
    assert [row["id"] for row in page["results"]] == [line.id for line in reversed(lines)][:100]
    first = page["results"][0]
    assert first["message"] == "line 149"
    assert first["level_name"] == "ERROR"
    assert first["context"] == {"i": 149}
    newest = Cursor(lines[-1].txid, lines[-1].id)
    assert Cursor.parse(page["horizon"]) > newest
    assert Cursor.parse(page["newer_cursor"]) >= newest
    assert first["cursor"] == cursor_of(lines[-1])


def test_before_cursor_walks_back_through_every_line(member_client, staged_job):
    ids = [line.id for line in add_lines(staged_job, 95)]
    seen, query = [], "limit=20"
    while query is not None:
        page = get_page(member_client, staged_job, query)
        seen += [row["id"] for row in page["results"]]
        query = None if page["older_cursor"] is None else f"limit=20&before={page['older_cursor']}"
        if page["older"] is not None:
            assert f"before={page['older_cursor']}" in page["older"]
    assert seen == ids[::-1]


def test_after_cursor_walks_forward_and_then_waits(member_client, staged_job):
    ids = [line.id for line in add_lines(staged_job, 45)]
    seen, cursor = [], "0.0"
    for _ in range(10):
        page = get_page(member_client, staged_job, f"limit=20&after={cursor}")
        seen += [row["id"] for row in page["results"]]
        if not page["results"]:
            break
        cursor = page["newer_cursor"]
    assert seen == ids
    more = [line.id for line in add_lines(staged_job, 3, start=45)]
    page = get_page(member_client, staged_job, f"after={cursor}")
    assert [row["id"] for row in page["results"]] == more


def test_lines_of_other_jobs_are_not_served(member_client, staged_job, job):
    add_lines(job, 10)
    add_lines(staged_job, 2)
    page = get_page(member_client, staged_job, "after=0.0")
    assert [row["message"] for row in page["results"]] == ["line 0", "line 1"]


@pytest.mark.parametrize(
    ("level", "expected"), [("warning", 2), ("WARNING", 2), ("40", 1), ("0", 5)]
)
def test_level_is_a_minimum(member_client, staged_job, level, expected):
    add_lines(staged_job, 5)
    page = get_page(member_client, staged_job, f"level={level}")
    assert len(page["results"]) == expected
    assert "level=" in page["newer"]  # the filter carries over to the next page


def test_since_until_and_text_search(member_client, staged_job):
    now = timezone.now()
    for i, minutes in enumerate((30, 20, 10)):
        line = JobLog.objects.create(job=staged_job, message=f"Saved detections for image {i}")
        JobLog.objects.filter(pk=line.pk).update(created_at=now - timedelta(minutes=minutes))
    JobLog.objects.create(job=staged_job, level=logging.ERROR, message="100% done_ok")

    def messages(query: str) -> list[str]:
        return [row["message"] for row in get_page(member_client, staged_job, query)["results"]]

    since = (now - timedelta(minutes=25)).isoformat().replace("+", "%2B")
    until = (now - timedelta(minutes=15)).isoformat().replace("+", "%2B")
    assert messages(f"since={since}&until={until}") == ["Saved detections for image 1"]
    assert len(messages(f"since={since}")) == 3
    assert messages("q=IMAGE 2") == ["Saved detections for image 2"]
    assert messages("q=100%25") == ["100% done_ok"]  # % and _ are literal, not wildcards
    assert messages("q=_") == ["100% done_ok"]
    assert messages("q=image&level=error") == []
    naive = (now - timedelta(minutes=25)).replace(tzinfo=None).isoformat()
    assert len(messages(f"since={naive}")) == 3  # a naive time is UTC


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=x", "limit"),
        ("after=-1", "after"),
        ("after=12", "after"),
        ("before=0", "before"),
        ("before=1.x", "before"),
        ("after=1.1&before=5.5", "before"),
        ("level=loud", "level"),
        ("level=99999", "level"),
        ("since=yesterday", "since"),
        ("until=2024-13-01T00:00:00", "until"),
        ("since=2024-02-01T00:00:00&until=2024-01-01T00:00:00", "until"),
        ("q=" + "x" * 201, "q"),
    ],
)
def test_bad_parameters_are_a_400_naming_the_parameter(member_client, staged_job, query, field):
    response = member_client.get(f"/api/jobs/{staged_job.pk}/logs?{query}")
    assert response.status_code == 400
    assert field in response.json(), response.json()


def test_stream_and_download_reject_bad_parameters(member_client, staged_job):
    base = f"/api/jobs/{staged_job.pk}/logs"
    for url, field in [
        (f"{base}/stream?level=loud", "level"),
        (f"{base}/stream?tail=99999", "tail"),
        (f"{base}/download?format=xml", "format"),
        (f"{base}/download?since=soon", "since"),
    ]:
        response = member_client.get(url)
        assert response.status_code == 400, url
        assert field in response.json()
    response = member_client.get(f"{base}/stream", HTTP_LAST_EVENT_ID="abc")
    assert response.status_code == 400
    assert "Last-Event-ID" in response.json()


@pytest.mark.parametrize("window", [1, 7, 1000])
def test_filtered_pages_are_the_same_whatever_the_scan_window(
    member_client, staged_job, job, monkeypatch, window
):
    monkeypatch.setattr("ami.jobs.api.log_query.FILTER_WINDOW", window)
    for start in range(0, 60, 10):  # interleave another job's ids with this job's
        add_lines(staged_job, 10, start=start)
        add_lines(job, 5)
    lines = JobLog.objects.filter(job=staged_job).order_by("txid", "id")
    # `q` matches from a word's start: "line 3" and "line 31", not "line 13".
    expected = [
        line.id
        for line in lines
        if line.level >= logging.WARNING and re.search(r"(?<!\w)3", line.message)
    ]
    assert len(expected) == 5  # 3, 33, 34, 38, 39

    def walk(query: str, key: str, cursor_param: str) -> list[int]:
        seen, extra = [], ""
        for _ in range(50):
            page = get_page(member_client, staged_job, f"level=warning&q=3&limit=4{extra}{query}")
            seen += [row["id"] for row in page["results"]]
            if page[key] is None or not page["results"]:
                return seen
            extra = f"&{cursor_param}={page[key]}"
            query = ""
        raise AssertionError("did not finish")

    assert walk("", "older_cursor", "before") == expected[::-1]
    assert walk("&after=0.0", "newer_cursor", "after") == expected
