"""The job page in headless Chromium, against a real uvicorn server and a running job."""

from __future__ import annotations

import logging
import multiprocessing

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from ami.jobs.lifecycle import create_job
from ami.jobs.locking import transition
from ami.jobs.models import JobLog, JobLogBudget, JobStage
from ami.jobs.states import JobStatus
from tests.browser.jobs.job_simulator import run_job
from tests.support.asgi_server import database_url

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")
IMAGES = 60
WAIT_MS = 30_000  # upper bound for any one wait; the job itself takes ~6 s
RECONNECT_WINDOW_MS = 3_000  # longer than the stream's `retry:` of 2 s


@pytest.fixture
def running_job(project, pipeline):
    user = get_user_model().objects.create_user("scientist", password="pw-scientist")
    project.members.add(user)
    job = create_job(project, pipeline, "Moth survey, night 12")
    JobStage.objects.filter(job=job, key="collect").update(
        status="SUCCESS", total=IMAGES, processed=IMAGES, progress=1.0
    )
    JobStage.objects.filter(job=job, key="process").update(total=IMAGES)
    transition(job.pk, JobStatus.STARTED)
    JobLog.objects.create(job=job, message=f"Collected {IMAGES} images")
    return job


def sign_in(page, base: str, next_url: str) -> None:
    page.goto(f"{base}/accounts/login/?next={next_url}")
    page.fill("input[name=username]", "scientist")
    page.fill("input[name=password]", "pw-scientist")
    page.click("#sign-in")
    page.wait_for_url(f"{base}{next_url}")


def progress(page) -> float:
    return page.eval_on_selector('.stage[data-stage="process"] .stage-bar', "el => el.value")


def log_messages(page) -> list[str]:
    return page.eval_on_selector_all("#log .line .msg", "els => els.map(e => e.textContent)")


def test_running_job_shows_progress_and_new_lines_live(asgi_server, page, screenshot, running_job):
    base, _ = asgi_server
    go = multiprocessing.get_context("spawn").Event()
    writer = multiprocessing.get_context("spawn").Process(
        target=run_job, args=(database_url(), running_job.pk, IMAGES, 0.1, go, "Job finished")
    )
    writer.start()
    try:
        sign_in(page, base, f"/jobs/{running_job.pk}/")
        page.wait_for_selector("text=live", timeout=WAIT_MS)
        assert progress(page) == 0
        assert log_messages(page) == [f"Collected {IMAGES} images"]
        screenshot("job-page-before")
        go.set()

        page.wait_for_function(PROGRESS_AT_LEAST, arg=0.2, timeout=WAIT_MS)
        page.wait_for_selector("#log .line >> text=Saved image 10", timeout=WAIT_MS)
        messages = log_messages(page)
        assert messages[-1] == f"Collected {IMAGES} images"  # newest first, oldest at the end
        assert int(page.text_content('.stage[data-stage="process"] .c-processed')) > 0
        screenshot("job-page-running")

        page.click("#log-pause")
        paused_at = log_messages(page)
        at_pause = progress(page)
        page.wait_for_function(PROGRESS_AT_LEAST, arg=at_pause + 0.15, timeout=WAIT_MS)
        assert log_messages(page) == paused_at  # lines kept being written, none shown
        page.click("#log-pause")
        newest_before = paused_at[0]
        page.wait_for_function(
            "m => document.querySelector('#log .line .msg').textContent !== m",
            arg=newest_before,
            timeout=WAIT_MS,
        )

        # Every tenth image failed: finished, but not a clean run.
        page.wait_for_selector("#job-status >> text=Completed with errors", timeout=WAIT_MS)
        assert "status-completed_with_errors" in page.get_attribute("#job-status", "class")
        assert (
            page.text_content("#job-images-failed") == f"{IMAGES // 10} of {IMAGES} images failed"
        )
        assert page.is_visible("#job-images-failed")
        page.wait_for_selector("text=log complete", timeout=WAIT_MS)
        assert progress(page) == 1
        messages = log_messages(page)
        assert messages[0] == "Job finished"
        assert len(messages) == IMAGES + 2
        assert len(set(messages)) == len(messages)  # nothing shown twice across pause/resume
        screenshot("job-page-finished")

        page.select_option("#log-level", "40")
        page.wait_for_function("() => document.querySelectorAll('#log .line').length === 6")
        assert all(m.endswith("failed") for m in log_messages(page))
        page.select_option("#log-level", "")
        page.fill("#log-search", "image 4")
        page.wait_for_function("() => document.querySelectorAll('#log .line').length === 11")
        assert all("image 4" in m for m in log_messages(page))
        screenshot("job-page-search")
    finally:
        go.set()
        writer.join(timeout=60)
    assert writer.exitcode == 0


PROGRESS_AT_LEAST = """
min => document.querySelector('.stage[data-stage="process"] .stage-bar').value >= min
"""


def test_a_long_log_opens_on_the_newest_page_and_pages_back(asgi_server, page, running_job):
    base, _ = asgi_server
    # "line 0" .. "line 99999" in one statement, in id order: as the ORM's bulk_create of
    # 100,000 objects would store them, in 2-3 s instead of ~20 s.
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {JobLog._meta.db_table} "
            "(job_id, job_partition_key, level, message, context)"
            " SELECT %s, %s, %s, 'line ' || i, '{}' FROM generate_series(0, 99999) AS i ORDER BY i",
            [running_job.pk, running_job.log_partition_key, logging.INFO],
        )
    transition(running_job.pk, JobStatus.SUCCESS)
    sign_in(page, base, f"/jobs/{running_job.pk}/")
    page.wait_for_selector("text=log complete", timeout=WAIT_MS)
    messages = log_messages(page)
    assert len(messages) == 200
    assert messages[0] == "line 99999"
    for _ in range(3):
        count = len(log_messages(page))
        page.click("#log-older")
        page.wait_for_function(f"() => document.querySelectorAll('#log .line').length > {count}")
    messages = log_messages(page)
    assert len(messages) == 800
    assert messages[-1] == "line 99200"


def test_the_page_shows_how_many_lines_the_log_budget_elided(asgi_server, page, running_job):
    base, _ = asgi_server
    sign_in(page, base, f"/jobs/{running_job.pk}/")
    page.wait_for_selector("text=live", timeout=WAIT_MS)
    assert page.is_hidden("#log-elided")  # nothing elided: no marker
    JobLogBudget.objects.create(job=running_job, elided_lines=42, elided_bytes=4200)
    page.select_option("#log-level", "20")  # a new first page brings the count
    page.wait_for_selector("#log-elided >> text=42 lines elided", timeout=WAIT_MS)


def test_cancel_from_the_page_revokes_the_job_and_ends_the_tail(asgi_server, page, running_job):
    base, _ = asgi_server
    sign_in(page, base, f"/jobs/{running_job.pk}/")
    page.wait_for_selector("text=live", timeout=WAIT_MS)
    page.click("#cancel-job")
    page.wait_for_selector("#job-status >> text=REVOKED", timeout=WAIT_MS)
    page.wait_for_selector("text=log complete", timeout=WAIT_MS)
    assert page.is_disabled("#cancel-job")
    running_job.refresh_from_db()
    assert running_job.status == JobStatus.REVOKED


def test_api_docs_render_offline(asgi_server, page, screenshot, running_job):
    base, _ = asgi_server
    sign_in(page, base, "/api/docs/")
    page.wait_for_selector(".opblock-summary-path >> text=/api/jobs/{id}/logs/", timeout=WAIT_MS)
    screenshot("api-docs")


def test_jobs_list_follows_status_and_progress(asgi_server, page, running_job):
    base, _ = asgi_server
    sign_in(page, base, "/jobs/")
    row = f'tr[data-job-id="{running_job.pk}"]'
    assert page.text_content(f"{row} .status") == "STARTED"
    JobStage.objects.filter(job=running_job, key="process").update(processed=30, progress=0.5)
    transition(running_job.pk, JobStatus.SUCCESS)
    page.wait_for_selector(f"{row} .status >> text=SUCCESS", timeout=WAIT_MS)
    bar = f'{row} progress[data-stage="process"]'
    assert page.eval_on_selector(bar, "el => el.value") == 0.5


def test_jobs_list_shows_a_job_completed_with_errors_as_final(asgi_server, page, running_job):
    base, _ = asgi_server
    JobStage.objects.filter(job=running_job, key="process").update(processed=57, failed=3)
    transition(running_job.pk, JobStatus.COMPLETED_WITH_ERRORS)
    sign_in(page, base, "/jobs/")
    badge = f'tr[data-job-id="{running_job.pk}"] .status'
    assert page.text_content(badge) == "Completed with errors"
    assert "status-completed_with_errors" in page.get_attribute(badge, "class")
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.wait_for_timeout(4_000)  # longer than the list's poll interval of 3 s
    assert not [url for url in requests if "/api/jobs/" in url]  # every job final: no polling
    sign_in(page, base, f"/jobs/{running_job.pk}/")
    assert page.text_content("#job-status") == "Completed with errors"
    assert page.text_content("#job-images-failed") == "3 of 60 images failed"


def test_a_refused_stream_shows_the_error_and_does_not_reconnect(asgi_server, page, running_job):
    base, _ = asgi_server
    streams: list[str] = []

    def spoil(route) -> None:
        streams.append(route.request.url)  # the real server answers a 400 naming `level`
        route.continue_(url=f"{route.request.url}&level=%C2%B2")

    page.route("**/logs/stream?*", spoil)
    sign_in(page, base, f"/jobs/{running_job.pk}/")
    page.wait_for_selector("#log-state >> text=error: ", timeout=WAIT_MS)
    assert "level" in page.text_content("#log-state")
    # Not an event to wait for but its absence: a reconnecting EventSource would ask again
    # within its retry interval (2 s), so watch for longer than that.
    page.wait_for_timeout(RECONNECT_WINDOW_MS)
    assert len(streams) == 2  # the EventSource, then one fetch for the reason; no retry
    assert "error: " in page.text_content("#log-state")
