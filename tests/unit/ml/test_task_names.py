"""The names Celery messages, routes and the beat schedule use all name registered tasks."""

from __future__ import annotations

import pytest
from django.conf import settings

from ami.celery import app


@pytest.fixture(scope="module")
def registered() -> set[str]:
    app.loader.import_default_modules()
    return set(app.tasks)


def test_routes_and_beat_schedule_name_registered_tasks(registered):
    named = {
        *settings.CELERY_TASK_ROUTES,
        *(e["task"] for e in settings.CELERY_BEAT_SCHEDULE.values()),
    }
    assert named - registered == set()


@pytest.mark.parametrize("task", ["run_job", "process_nats_pipeline_result", "check_stale_jobs"])
def test_ml_tasks_still_run_messages_queued_under_their_old_names(registered, task):
    assert {f"ami.ml.tasks.{task}", f"ami.jobs.tasks.{task}"} <= registered
