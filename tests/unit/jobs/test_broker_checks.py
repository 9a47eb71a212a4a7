"""`jobs.E005`/`E006`: a task lost with its worker comes back after it may no longer run,
and before the stale-job check closes its job."""

from __future__ import annotations

import pytest

from ami.jobs.checks import check_broker_redelivery


def ids(settings, visibility: int, interval: int, throttle: int = 1) -> list[str]:
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": visibility,
        "unacked_restore_interval": interval,
        "unacked_restore_throttle": throttle,
    }
    return [error.id for error in check_broker_redelivery(None)]


def test_the_shipped_settings_pass():
    assert check_broker_redelivery(None) == []


@pytest.mark.parametrize(
    ("visibility", "interval", "throttle", "expected"),
    [
        (450, 10, 1, []),
        (360, 10, 1, ["jobs.E005"]),  # equal to the time limit: a running task comes back
        (891, 10, 1, ["jobs.E006"]),  # comes back at 901 s, after the 900 s stale window
        (450, 10, 50, ["jobs.E006"]),  # kombu's throttle stretches the sweep to 500 s
        (3600, 10, 10, ["jobs.E006"]),  # kombu's defaults: an hour and 100 s
    ],
)
def test_redelivery_between_the_time_limit_and_the_stale_window(
    settings, visibility, interval, throttle, expected
):
    settings.CELERY_TASK_TIME_LIMIT = 360
    settings.JOB_STALE_AFTER = 900
    assert ids(settings, visibility, interval, throttle) == expected


def test_options_left_out_take_kombus_defaults(settings):
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}
    assert [error.id for error in check_broker_redelivery(None)] == ["jobs.E006"]
