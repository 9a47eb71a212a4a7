"""A filtered page scans at most SCAN_BUDGET candidate lines, then ends early (`partial`) with
a cursor that goes on: every reader (the page API, the live stream, `ami logs`) still gets
every match once, in order.

The budget and the first window are made tiny so that a 40-line job needs several pages.
"""

from __future__ import annotations

import io
import logging

import pytest
from django.core.management import call_command

from ami.jobs.api.cursor import START
from ami.jobs.api.horizon import log_horizon
from ami.jobs.api.log_query import LogFilters
from ami.jobs.api.stream import _after
from ami.jobs.models import JobLog

pytestmark = pytest.mark.django_db(transaction=True)

LINES = 40
MATCHES = {3, 21, 22}  # positions of the lines that match; the words of `q` are on every one


@pytest.fixture
def tiny_budget(monkeypatch):
    monkeypatch.setattr("ami.jobs.api.log_query.FILTER_WINDOW", 2)
    monkeypatch.setattr("ami.jobs.api.log_query.SCAN_BUDGET", 6)  # two windows: 2 + 4 lines


@pytest.fixture
def sparse_job(staged_job):
    for i in range(LINES):
        matched = i in MATCHES
        JobLog.objects.create(
            job=staged_job,
            message=f"image {i} saved to disk" if matched else f"image {i}: disk saved to nothing",
            level=logging.ERROR if matched else logging.INFO,
        )
    ids = list(
        JobLog.objects.filter(job=staged_job).order_by("txid", "id").values_list("id", flat=True)
    )
    return staged_job, [ids[i] for i in sorted(MATCHES)]


def follow_pages(client, url: str, key: str, param: str) -> tuple[list[int], int]:
    """Every line id over the pages, following `key`'s cursor; and how many pages were partial."""
    seen, partial, extra = [], 0, ""
    for _ in range(LINES):
        page = client.get(f"{url}{extra}").json()
        seen += [row["id"] for row in page["results"]]
        partial += page["partial"]
        if page[key] is None or not (page["results"] or page["partial"]):
            break
        extra = f"&{param}={page[key]}"
    return seen, partial


@pytest.mark.parametrize("with_budget", [True, False], ids=["tiny budget", "default budget"])
def test_pages_end_early_and_go_on_without_skipping(
    member_client, sparse_job, monkeypatch, with_budget, request
):
    if with_budget:
        request.getfixturevalue("tiny_budget")
    job, expected = sparse_job
    url = f"/api/jobs/{job.pk}/logs?q=saved to disk&limit=2"
    older, partial_older = follow_pages(member_client, url, "older_cursor", "before")
    newer, partial_newer = follow_pages(member_client, f"{url}&after=0.0", "newer_cursor", "after")
    assert older == expected[::-1] and newer == expected
    # The default budget covers the job in one scan; the tiny one stops several times.
    assert (partial_older > 0 and partial_newer > 0) is with_budget


def test_the_first_page_says_it_is_partial(member_client, sparse_job, tiny_budget):
    job, _ = sparse_job
    page = member_client.get(f"/api/jobs/{job.pk}/logs?q=saved to disk").json()
    assert page["results"] == [] and page["partial"] is True
    assert page["older_cursor"] is not None and "before=" in page["older"]


def test_the_stream_reads_on_at_once_after_a_partial_page(sparse_job, tiny_budget):
    job, expected = sparse_job
    filters, cursor, seen = LogFilters(q="saved to disk"), START, []
    for _ in range(LINES):
        poll = _after(job.pk, cursor, filters, False, 0.0, False)
        seen += [row["id"] for row in poll.rows]
        cursor = poll.cursor
        if not poll.more:
            break
    assert seen == expected
    assert cursor.txid < log_horizon()  # it reached the horizon, not a stop in between


def test_ami_logs_prints_every_match_across_partial_pages(sparse_job, tiny_budget):
    job, _ = sparse_job
    out = io.StringIO()
    call_command("logs", str(job.pk), level="error", stdout=out)
    printed = [line for line in out.getvalue().splitlines() if "saved to disk" in line]
    assert [int(line.split("image ")[1].split()[0]) for line in printed] == sorted(MATCHES)
