"""The handler with the memory backend: what reaches the backend, and what never does."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
from celery import signals
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from ami.jobs.logging import JOB_LOGGER_NAME, job_logger
from ami.jobs.logging.backends.memory import MemoryBackend
from ami.jobs.logging.handler import build_backend, get_backend


@pytest.fixture
def memory() -> MemoryBackend:
    backend = get_backend()
    assert isinstance(backend, MemoryBackend)  # tests without the logs database use memory
    return backend


def test_extra_becomes_context_and_exceptions_are_in_the_message(memory):
    try:
        raise ValueError("bad box")
    except ValueError:
        job_logger(7).exception("saving image %d failed", 3, extra={"image_id": 3})
    (line,) = memory.lines(7)
    assert line.level == logging.ERROR and line.context["image_id"] == 3
    assert line.message.startswith("saving image 3 failed\nTraceback")
    assert "ValueError: bad box" in line.message


def test_records_without_a_job_id_are_not_stored(memory):
    logging.getLogger(JOB_LOGGER_NAME).warning("no job attached")
    assert memory.rows == []


def test_dotted_path_selects_a_backend():
    with override_settings(JOB_LOG_BACKEND="ami.jobs.logging.backends.memory.MemoryBackend"):
        assert isinstance(get_backend(), MemoryBackend)


def test_settings_reach_the_backend():
    with override_settings(JOB_LOG_MAX_MESSAGE_CHARS=5, JOB_LOG_BUFFER_BATCH_SIZE=7):
        assert build_backend("memory").max_message_chars == 5
        assert build_backend("buffered", dual_write=False).writer.batch_size == 7


def test_lines_logged_by_a_celery_task_carry_its_id(memory):
    signals.task_prerun.send(sender=None, task_id="task-123", task=None, args=(), kwargs={})
    job_logger(7).info("inside the task")
    signals.task_postrun.send(sender=None, task_id="task-123", task=None, args=(), kwargs={})
    job_logger(7).info("after the task")
    inside, after = memory.lines(7)
    assert inside.context["task_id"] == "task-123"
    assert "task_id" not in after.context


@pytest.mark.parametrize("name", ["synk", "ami.jobs.models.Job", "json"])
def test_an_unknown_backend_is_a_clear_configuration_error(name):
    with pytest.raises(ImproperlyConfigured, match=f"JOB_LOG_BACKEND='{name}'"):
        build_backend(name)


def test_a_mistyped_backend_stops_the_process_at_startup():
    env = {**os.environ, "JOB_LOG_BACKEND": "synk"}
    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "JOB_LOG_BACKEND='synk' is not a job log backend" in done.stderr
