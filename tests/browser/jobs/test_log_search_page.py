"""The log search page in headless Chromium: matches across jobs and the level histogram."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from ami.jobs.lifecycle import create_job
from ami.jobs.models import JobLog
from ami.main.models import Project

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")
WAIT_MS = 30_000


@pytest.fixture
def searchable(project, pipeline):
    user = get_user_model().objects.create_user("scientist", password="pw-scientist")
    project.members.add(user)
    jobs = [create_job(project, pipeline, f"Night {n}") for n in (1, 2)]
    hidden = create_job(Project.objects.create(name="Someone else's"), None, "Hidden")
    now = timezone.now()
    for i in range(12):
        line = JobLog.objects.create(
            job=jobs[i % 2],
            level=logging.ERROR if i % 4 == 0 else logging.INFO,
            message=f"image {i} failed: timeout" if i % 3 == 0 else f"image {i} saved",
            context={"image_id": i + 1},
        )
        JobLog.objects.filter(pk=line.pk).update(created_at=now - timedelta(minutes=i))
    JobLog.objects.create(job=hidden, message="image 0 failed: timeout secret")
    return jobs


def test_search_lists_matches_with_job_links_and_draws_the_histogram(
    asgi_server, page, screenshot, searchable
):
    base, _ = asgi_server
    page.goto(f"{base}/accounts/login/?next=/logs/")
    page.fill("input[name=username]", "scientist")
    page.fill("input[name=password]", "pw-scientist")
    page.click("#sign-in")
    page.wait_for_url(f"{base}/logs/")
    page.wait_for_selector("#search-results .line", timeout=WAIT_MS)
    page.fill("#s-q", "failed: timeout")
    page.click("#s-go")
    # A function, not an expression: the page's CSP forbids the eval an expression needs.
    page.wait_for_function(
        "() => document.querySelectorAll('#search-results .line').length === 4", timeout=WAIT_MS
    )
    messages = page.eval_on_selector_all(
        "#search-results .msg", "els => els.map(e => e.textContent)"
    )
    assert messages == [f"image {i} failed: timeout" for i in (9, 6, 3, 0)]  # newest first
    links = page.eval_on_selector_all("#search-results a.job-link", "els => els.map(e => e.href)")
    assert {link.removeprefix(base) for link in links} == {f"/jobs/{j.pk}/" for j in searchable}
    bars = page.eval_on_selector_all(
        "#histogram rect.bar", "els => els.map(e => [e.dataset.level, +e.dataset.count])"
    )
    assert sorted(bars) == [["ERROR", 1], ["INFO", 1], ["INFO", 1], ["INFO", 1]]  # lines 0, 3, 6, 9
    screenshot("log-search")
    page.click("#search-results a.job-link >> nth=0")
    page.wait_for_url(f"{base}/jobs/*/")
    page.wait_for_selector("#log a.image-link", timeout=WAIT_MS)
    href = page.eval_on_selector("#log a.image-link", "e => e.getAttribute('href')")
    assert href.startswith("/api/images/")
