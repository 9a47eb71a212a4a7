"""The handler with the memory backend: what reaches the backend, and what never does."""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from celery import signals
from celery.exceptions import SoftTimeLimitExceeded
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from ami.jobs.logging import JOB_LOGGER_NAME, job_logger
from ami.jobs.logging.backends.memory import MemoryBackend
from ami.jobs.logging.handler import JobLogHandler, build_backend, dropped_lines, get_backend
from tests.support.log_settings import job_logs_with


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
    """A dotted path builds that very class (a test-only one); the alias builds its own."""
    path = "tests.support.log_backends.StubBackend"
    with override_settings(JOB_LOGS=job_logs_with(BACKEND=path)):
        backend = get_backend()
        assert f"{type(backend).__module__}.{type(backend).__qualname__}" == path
    with override_settings(JOB_LOGS=job_logs_with(BACKEND="memory")):
        assert type(get_backend()) is MemoryBackend


def test_options_reach_the_backend():
    with override_settings(JOB_LOGS=job_logs_with(max_message_chars=5, batch_size=7)):
        assert build_backend("memory").max_message_chars == 5
        assert build_backend("buffered", dual_write=False).writer.batch_size == 7


def test_an_option_the_backend_does_not_take_is_refused_when_it_is_built():
    job_logs = job_logs_with(BACKEND="memory", intervall=1.0)
    refused = pytest.raises(ImproperlyConfigured, match=r'\["intervall"\].*MemoryBackend takes')
    with override_settings(JOB_LOGS=job_logs), refused:
        build_backend()


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
    with pytest.raises(ImproperlyConfigured, match=f"JOB_LOG_BACKEND\\)='{name}'"):
        build_backend(name)


def test_a_mistyped_backend_stops_the_process_at_startup():
    env = {**os.environ, "JOB_LOG_BACKEND": "synk"}
    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "(environment: JOB_LOG_BACKEND)='synk' is not a job log backend" in done.stderr


@contextmanager
def only_the_job_log_handler() -> Iterator[None]:
    """Only the JobLog handler sees the records: pytest's capture handlers (added at call
    time) format a bad record without the stdlib's handleError guard, and are not under test."""
    logger = logging.getLogger(JOB_LOGGER_NAME)
    saved = logger.handlers, logger.propagate
    logger.handlers = [h for h in logger.handlers if isinstance(h, JobLogHandler)]
    logger.propagate = False
    try:
        yield
    finally:
        logger.handlers, logger.propagate = saved


class RaisingStr:
    def __str__(self) -> str:
        raise RuntimeError("__str__ failed")


BAD_RECORDS = {
    "__str__ raises RuntimeError": lambda log: log.info("%s", RaisingStr()),
    "message object's __str__ raises": lambda log: log.info(RaisingStr()),
    "%-format mapping misses a key": lambda log: log.info("%(missing)s", {"other": 1}),
    "too few arguments": lambda log: log.info("%s and %s", 1),
    "bad format character": lambda log: log.info("%y", 1),
}


@pytest.mark.parametrize("case", list(BAD_RECORDS))
def test_a_record_that_cannot_be_formatted_is_counted_not_raised(case, memory):
    before = dropped_lines()
    with only_the_job_log_handler():
        BAD_RECORDS[case](job_logger(7))  # raises nothing
    job_logger(7).info("the next line")
    assert [row.message for row in memory.lines(7)] == ["the next line"]
    assert dropped_lines() == before + 1


@pytest.mark.parametrize("job_id", ["abc", "", math.nan, math.inf, 7.5, object(), True, [7]])
def test_a_record_without_a_usable_job_id_is_counted_not_raised(job_id, memory):
    before = dropped_lines()
    with only_the_job_log_handler():
        job_logger(job_id).info("whose line?")  # raises nothing
    assert memory.rows == []
    assert dropped_lines() == before + 1


def test_a_job_id_given_as_text_is_still_its_job(memory):
    job_logger("7").info("from a string id")
    assert [row.job_id for row in memory.rows] == [7]


def test_a_soft_time_limit_still_reaches_the_caller(memory):
    class SlowStr:
        def __str__(self) -> str:
            raise SoftTimeLimitExceeded()

    with pytest.raises(SoftTimeLimitExceeded), only_the_job_log_handler():
        job_logger(7).info("%s", SlowStr())
