"""Every `JOB_LOGS` key and backend option is checked for type and range: by the system check,
at process startup, and by the backend constructors (a batch size of 0 used to busy-loop and
drop lines). An option the chosen backend does not take is an error too."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from ami.jobs.checks import check_job_log_settings
from ami.jobs.logging import config, wiring
from ami.jobs.logging.backends.background import BackgroundWriter
from ami.jobs.logging.backends.base import DEFAULT_INTERVAL
from ami.jobs.logging.backends.buffered import BufferedBackend
from ami.jobs.logging.backends.memory import MemoryBackend
from ami.jobs.logging.backends.redis import RedisBackend
from ami.jobs.logging.errors import FailureReporter
from tests.support.log_settings import job_logs_with

BAD_VALUES = {
    "BACKEND": [None, "", 3],
    "DUAL_WRITE": ["maybe", 1, None],
    "LEVEL": ["LOUD", -1, 40000, None],
    "FLUSH_TIMEOUT": [-1, math.nan, math.inf, "5"],
    "RETENTION": [None, 90],
    "RETENTION_INTERVAL": [0, -1, math.nan, "daily"],
    "max_message_chars": [0, -5, 1.5, "100", True],
    "repeat_window": [0, -1.0, math.nan, math.inf, "1"],
    "batch_size": [0, -1, 2.5, "1000", False],
    "interval": [0, -0.25, math.nan, math.inf, "0.25", 7200],
    "max_lines": [0, -1, 1e6, "50000"],
}
CASES = [(name, value) for name, values in BAD_VALUES.items() for value in values]


def where(name: str) -> str:
    return f'JOB_LOGS["{name}"]' if name.isupper() else f'JOB_LOGS["OPTIONS"]["{name}"]'


def test_the_default_settings_pass_the_check():
    assert check_job_log_settings(None) == []


@pytest.mark.parametrize(("name", "value"), CASES, ids=[f"{n}={v!r}" for n, v in CASES])
def test_each_bad_value_is_a_check_error_naming_the_key(name, value):
    with override_settings(JOB_LOGS=job_logs_with(**{name: value})):
        errors = check_job_log_settings(None)
    assert [error.id for error in errors] == ["jobs.E002"]
    assert errors[0].msg.startswith(where(name))
    assert f"={value!r}: expected" in errors[0].msg


def test_an_unknown_key_is_a_check_error():
    with override_settings(JOB_LOGS=job_logs_with(BACKEND="sync", RETENTON="30d")):
        (error,) = check_job_log_settings(None)
    assert error.id == "jobs.E002" and 'JOB_LOGS["RETENTON"]: unknown key' in error.msg


def test_a_backend_that_does_not_exist_is_a_check_error():
    with override_settings(JOB_LOGS=job_logs_with(BACKEND="synk")):
        assert [error.id for error in check_job_log_settings(None)] == ["jobs.E003"]


def test_an_option_the_backend_does_not_take_fails_ami_check():
    with override_settings(JOB_LOGS=job_logs_with(BACKEND="buffered", flush_every=2)):
        with pytest.raises(SystemCheckError, match=r'\["OPTIONS"\]\["flush_every"\]'):
            call_command("check")
        (error,) = check_job_log_settings(None)
    assert error.id == "jobs.E004"
    assert "BufferedBackend takes no such option" in error.msg and "interval" in error.msg


def test_an_option_the_backend_does_not_take_stops_the_process_at_startup():
    """`wiring.install` (the jobs app's ready()) runs the same check in every process."""
    job_logs = job_logs_with(BACKEND="sync", flush_every=2)
    refused = pytest.raises(ImproperlyConfigured, match="SyncBackend takes no such option")
    with override_settings(JOB_LOGS=job_logs), refused:
        wiring.install()


def test_queue_options_are_every_backends_own():
    """Any backend may queue lines (dual-write), and the load test sets the queue's
    environment variables for every mode: no backend refuses them."""
    for name in ("sync", "buffered", "redis", "legacy_json", "memory"):
        job_logs = job_logs_with(BACKEND=name, batch_size=10, interval=1.0, max_lines=100)
        with override_settings(JOB_LOGS=job_logs):
            assert check_job_log_settings(None) == []


@pytest.mark.parametrize("value", [0, 1, 600])
def test_a_flush_timeout_of_zero_or_more_is_fine(value):
    with override_settings(JOB_LOGS=job_logs_with(FLUSH_TIMEOUT=value)):
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
    assert f"(environment: {variable})=" in done.stderr.splitlines()[-1]


def run_in_a_new_process(code: str, **environ: str) -> str:
    """Run `code` after django.setup() in a fresh interpreter with `environ`; its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOB_LOG_")} | environ
    done = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup()\n{code}"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout.strip()


BUILD_BUFFERED = (
    "from ami.jobs.logging.handler import build_backend\n"
    "print(build_backend('buffered', dual_write=False).writer.interval)"
)


def test_an_environment_variable_reaches_the_backend_option():
    assert run_in_a_new_process(BUILD_BUFFERED, JOB_LOG_BUFFER_INTERVAL="1.5") == "1.5"


def test_without_the_environment_variable_the_backend_default_applies():
    assert run_in_a_new_process(BUILD_BUFFERED) == str(DEFAULT_INTERVAL)


def test_only_the_variables_set_are_passed_as_options():
    code = "from django.conf import settings; print(sorted(settings.JOB_LOGS['OPTIONS']))"
    assert run_in_a_new_process(code, JOB_LOG_BUFFER_MAX_LINES="9") == "['max_lines']"


@pytest.mark.parametrize(
    ("option", "value"),
    [("redis_timeout", 0), ("redis_timeout", math.inf), ("lease", 0), ("lease", -1),
     ("redis_url", ""), ("redis_url", 5)],
)  # fmt: skip
def test_the_redis_backend_refuses_bad_options(option, value):
    with pytest.raises(ValueError, match=option):
        RedisBackend(**{option: value})


def test_the_redis_options_and_drain_interval_come_from_the_environment():
    environ = {
        "JOB_LOG_REDIS_TIMEOUT": "0.2",
        "JOB_LOG_REDIS_LEASE": "3",
        "AMI_JOB_LOG_DRAIN_INTERVAL": "2.5",
    }
    job_logs = config.from_environ(environ)
    assert job_logs["OPTIONS"] == {"redis_timeout": 0.2, "lease": 3.0}
    assert job_logs["DRAIN_INTERVAL"] == 2.5
    with override_settings(JOB_LOGS={**job_logs, "BACKEND": "redis"}):
        assert check_job_log_settings(None) == []
