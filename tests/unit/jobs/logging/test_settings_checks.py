"""Every `JOB_LOG_*` setting is checked for type and range: by the system check, at process
startup, and by the backend constructors (a batch size of 0 used to busy-loop and drop lines)."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
from django.test import override_settings

from ami.jobs.checks import check_job_log_settings
from ami.jobs.logging.backends.background import BackgroundWriter
from ami.jobs.logging.backends.buffered import BufferedBackend
from ami.jobs.logging.backends.legacy_json import LegacyJsonBackend
from ami.jobs.logging.backends.memory import MemoryBackend
from ami.jobs.logging.errors import FailureReporter

BAD_VALUES = {
    "JOB_LOG_BACKEND": [None, "", 3],
    "JOB_LOG_DUAL_WRITE": ["maybe", 1, None],
    "JOB_LOG_LEVEL": ["LOUD", -1, 40000, None],
    "JOB_LOG_MAX_MESSAGE_CHARS": [0, -5, 1.5, "100", True],
    "JOB_LOG_REPEAT_WINDOW": [0, -1.0, math.nan, math.inf, "1"],
    "JOB_LOG_BUFFER_BATCH_SIZE": [0, -1, 2.5, "1000", False],
    "JOB_LOG_BUFFER_INTERVAL": [0, -0.25, math.nan, math.inf, "0.25", 7200],
    "JOB_LOG_BUFFER_MAX_LINES": [0, -1, 1e6, "50000"],
    "JOB_LOG_FLUSH_TIMEOUT": [-1, math.nan, math.inf, "5"],
    "JOB_LOG_LEGACY_MAX_LINES": [0, -1, "1000"],
    "JOB_LOG_RETENTION": [None, 90],
    "JOB_LOG_RETENTION_INTERVAL": [0, -1, math.nan, "daily"],
}
CASES = [(name, value) for name, values in BAD_VALUES.items() for value in values]


def test_the_default_settings_pass_the_check():
    assert check_job_log_settings(None) == []


@pytest.mark.parametrize(("name", "value"), CASES, ids=[f"{n}={v!r}" for n, v in CASES])
def test_each_bad_value_is_a_check_error_naming_the_setting(name, value):
    with override_settings(**{name: value}):
        errors = check_job_log_settings(None)
    assert [error.id for error in errors] == ["jobs.E002"]
    assert errors[0].msg.startswith(f"{name}={value!r}: expected")


def test_a_backend_that_does_not_exist_is_a_check_error():
    with override_settings(JOB_LOG_BACKEND="synk"):
        assert [error.id for error in check_job_log_settings(None)] == ["jobs.E003"]


@pytest.mark.parametrize("value", [0, 1, 600])
def test_a_flush_timeout_of_zero_or_more_is_fine(value):
    with override_settings(JOB_LOG_FLUSH_TIMEOUT=value):
        assert check_job_log_settings(None) == []


@pytest.mark.parametrize(
    ("option", "value"),
    [("batch_size", 0), ("batch_size", -1), ("max_lines", 0), ("max_lines", -10),
     ("interval", 0), ("interval", math.nan), ("batch_size", 1.5)],
)  # fmt: skip
def test_the_buffered_backend_and_its_writer_refuse_bad_sizes(option, value):
    with pytest.raises(ValueError, match=option):
        BufferedBackend(**{option: value})
    sizes = {"batch_size": 10, "interval": 0.1, "max_lines": 10} | {option: value}
    with pytest.raises(ValueError, match=option):
        BackgroundWriter(lambda rows: None, FailureReporter("t"), name="t", **sizes)


@pytest.mark.parametrize(
    ("option", "value"),
    [("max_message_chars", 0), ("max_message_chars", "10"), ("repeat_window", 0),
     ("repeat_window", math.inf)],
)  # fmt: skip
def test_every_backend_refuses_bad_line_rules(option, value):
    with pytest.raises(ValueError, match=option):
        MemoryBackend(**{option: value})


def test_the_legacy_backend_refuses_a_cap_below_one():
    with pytest.raises(ValueError, match="max_lines"):
        LegacyJsonBackend(max_lines=0)


@pytest.mark.parametrize(
    ("variable", "value"),
    [("JOB_LOG_BUFFER_BATCH_SIZE", "0"), ("JOB_LOG_BUFFER_MAX_LINES", "many"),
     ("JOB_LOG_DUAL_WRITE", "maybe")],
)  # fmt: skip
def test_a_bad_environment_value_stops_the_process_at_startup(variable, value):
    """Celery workers run no system checks: the same rules stop them at django.setup()."""
    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**os.environ, variable: value}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert f"ImproperlyConfigured: {variable}=" in done.stderr
