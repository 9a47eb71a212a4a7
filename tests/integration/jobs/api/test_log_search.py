"""Message search (`q`), context filters, and project-wide search with its histogram."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from ami.jobs.lifecycle import create_job
from ami.jobs.models import JobLog
from ami.main.models import Project

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGES = [
    "Saved 3 detections for image 434 on worker w1",
    "Saved 2 detections for image 4345 on worker w2",
    "Image 434 retried (attempt 2)",
    "Saved 1 detections for image 12 on worker w1",
    "Failed to save results for image 99: timeout after 30 s",
    "model.pt loaded from /data/models",
    "100% done_ok",
]


def add(job, message: str, level: int = logging.INFO, **context) -> JobLog:
    return JobLog.objects.create(job=job, message=message, level=level, context=context)


def messages(client, url: str) -> list[str]:
    response = client.get(url)
    assert response.status_code == 200, response.content
    return [row["message"] for row in response.json()["results"]]


@pytest.fixture
def searched_job(staged_job):
    for i, message in enumerate(MESSAGES):
        add(staged_job, message, image_id=i + 1, worker=f"w{i % 2}", stage="process")
    return staged_job


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("image 434", [0, 1, 2]),  # the phrase, from a word's start: 434 and 4345
        ("image 434 on", [0]),
        ("IMAGE 12", [3]),
        ("imag", [0, 1, 2, 3, 4]),  # the last word may be a prefix
        ("mage 434", []),  # a match starts at a word's start
        ("timeout after", [4]),
        ("model.pt", [5]),
        ("/data/models", [5]),
        ("100%", [6]),
        ("_", [6]),  # no word at all: a plain substring search
        ("nothing like this", []),
        ("detections image", []),  # every word, but not that text
    ],
)
def test_q_finds_the_text_from_a_word_start(member_client, searched_job, q, expected):
    found = messages(member_client, f"/api/jobs/{searched_job.pk}/logs?q={q.replace('%', '%25')}")
    assert found == [MESSAGES[i] for i in reversed(expected)]


@pytest.mark.parametrize("window", [1, 3, 1000])
def test_paging_with_q_neither_skips_nor_repeats(
    member_client, staged_job, job, monkeypatch, window
):
    monkeypatch.setattr("ami.jobs.api.log_query.FILTER_WINDOW", window)
    for i in range(60):
        add(staged_job, f"image {i} saved" if i % 3 else f"image {i} failed: timeout")
        add(job, f"image {i} failed: timeout")  # another job's lines interleave
    lines = JobLog.objects.filter(job=staged_job).order_by("txid", "id")
    expected = [line.id for line in lines if re.search(r"(?<!\w)failed: time", line.message)]
    assert len(expected) == 20
    for direction, key, param, order in [
        ("", "older_cursor", "before", expected[::-1]),
        ("&after=0.0", "newer_cursor", "after", expected),
    ]:
        seen, extra = [], direction
        for _ in range(30):
            page = member_client.get(
                f"/api/jobs/{staged_job.pk}/logs?q=failed: time&limit=3{extra}"
            ).json()
            seen += [row["id"] for row in page["results"]]
            if page[key] is None or not page["results"]:
                break
            extra = f"&{param}={page[key]}"
        assert seen == order


def test_context_filters(member_client, searched_job):
    base = f"/api/jobs/{searched_job.pk}/logs"
    assert messages(member_client, f"{base}?image=3") == [MESSAGES[2]]
    assert messages(member_client, f"{base}?worker=w1&q=saved") == [MESSAGES[3], MESSAGES[1]]
    assert len(messages(member_client, f"{base}?stage=process")) == len(MESSAGES)
    assert messages(member_client, f"{base}?stage=other") == []
    assert messages(member_client, f"{base}?processing_service=5") == []
    page = member_client.get(f"{base}?image=3").json()
    assert "image=3" in page["newer"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("image=x", "image"),
        ("image=0", "image"),
        ("image=" + "9" * 30, "image"),
        ("processing_service=-1", "processing_service"),
        ("worker=" + "w" * 201, "worker"),
        ("stage=%00", "stage"),
    ],
)
def test_bad_context_filters_are_a_400_naming_them(member_client, staged_job, query, field):
    for url in (f"/api/jobs/{staged_job.pk}/logs?{query}", f"/api/logs?{query}"):
        response = member_client.get(url)
        assert response.status_code == 400, url
        assert field in response.json()


# -- Project-wide search ----------------------------------------------------------------------
@pytest.fixture
def other_job(outsider):
    project = Project.objects.get(name="Outsider project")
    job = create_job(project, None, "Their job")
    add(job, "image 434 secret line")
    return job


def test_project_search_spans_your_jobs_and_never_another_project(
    member_client, staged_job, job, project, other_job, client_for, outsider
):
    add(staged_job, "image 434 first")
    add(job, "image 434 second")
    add(staged_job, "image 434 third")
    response = member_client.get("/api/logs?q=image 434")
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [r["message"] for r in rows] == [
        "image 434 third",
        "image 434 second",
        "image 434 first",
    ]
    assert [r["job_id"] for r in rows] == [staged_job.pk, job.pk, staged_job.pk]
    assert messages(member_client, f"/api/logs?project={project.pk}&q=secret") == []
    assert member_client.get(f"/api/logs?project={other_job.project_id}").status_code == 404
    assert messages(client_for(outsider), "/api/logs?q=image") == ["image 434 secret line"]
    from rest_framework.test import APIClient

    assert APIClient().get("/api/logs").status_code == 403
    assert APIClient().get("/api/logs/histogram").status_code == 403


def test_project_search_pages_across_jobs(member_client, staged_job, job):
    for i in range(25):
        add(staged_job if i % 2 else job, f"line {i}")
    seen, query = [], "/api/logs?limit=4"
    while query:
        page = member_client.get(query).json()
        seen += [row["message"] for row in page["results"]]
        query = page["older"]
    assert seen == [f"line {i}" for i in reversed(range(25))]
    newer = member_client.get("/api/logs?after=0.0&limit=10").json()
    assert [r["message"] for r in newer["results"]] == [f"line {i}" for i in range(10)]


def test_histogram_counts_lines_per_minute_and_level(member_client, staged_job, other_job):
    start = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=10)
    for minute, level, count in [(0, logging.INFO, 3), (0, logging.ERROR, 1), (2, logging.INFO, 2)]:
        for _ in range(count):
            line = add(staged_job, "image 1 saved", level)
            JobLog.objects.filter(pk=line.pk).update(created_at=start + timedelta(minutes=minute))
    since = start.isoformat().replace("+", "%2B")
    response = member_client.get(f"/api/logs/histogram?since={since}")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["bucket_seconds"] == 60
    assert [b["counts"] for b in body["buckets"]] == [{"INFO": 3, "ERROR": 1}, {"INFO": 2}]
    error_only = member_client.get(f"/api/logs/histogram?since={since}&level=error").json()
    assert [b["counts"] for b in error_only["buckets"]] == [{"ERROR": 1}]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("since=2020-01-01T00:00:00&until=2024-01-01T00:00:00", "since"),
        ("since=2020-01-01T00:00:00", "since"),
        ("until=never", "until"),
        ("project=abc", "project"),
        ("q=%00", "q"),
    ],
)
def test_histogram_refuses_bad_or_huge_ranges(member_client, query, field):
    response = member_client.get(f"/api/logs/histogram?{query}")
    assert response.status_code == 400
    assert field in response.json(), response.json()


def test_search_page_loads_its_script_and_no_inline_one(member_client, project):
    response = member_client.get("/logs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'src="/static/jobs/log_search.js"' in html
    assert "<script>" not in html
    assert project.name in html
    assert member_client.get("/static/jobs/log_search.js").status_code == 200


def test_the_image_filter_finds_lines_about_a_batch_that_holds_the_image(member_client, staged_job):
    add(staged_job, "Saved 3 images", image_ids=[7, 8, 9], worker="w1")
    add(staged_job, "Saved image 8", image_id=8)
    add(staged_job, "Saved 2 images", image_ids=[10, 11])
    base = f"/api/jobs/{staged_job.pk}/logs"
    assert messages(member_client, f"{base}?image=8") == ["Saved image 8", "Saved 3 images"]
    assert messages(member_client, f"{base}?image=8&worker=w1") == ["Saved 3 images"]
    assert messages(member_client, f"{base}?image=12") == []
