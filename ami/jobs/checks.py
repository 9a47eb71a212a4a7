"""Django system checks for the jobs settings (run by `ami check`, `migrate`, the web server)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured

from ami.jobs.logging.config import job_logs_setting, label
from ami.jobs.logging.handler import backend_class
from ami.jobs.logging.retention import parse_age
from ami.jobs.logging.validation import setting_problems, unknown_options

# kombu's Redis transport defaults, for options the setting leaves out.
KOMBU_VISIBILITY_TIMEOUT = 3600  # seconds
KOMBU_RESTORE_INTERVAL = 10  # seconds
KOMBU_RESTORE_THROTTLE = 10  # sweeps per actual scan


@register()
def check_job_log_retention(app_configs: object, **kwargs: object) -> list[Error]:
    retention = job_logs_setting()["RETENTION"]
    if not isinstance(retention, str) or not retention:
        return []
    try:
        parse_age(retention)
    except ValueError as exc:
        return [Error(f"{label('RETENTION')}: {exc}", id="jobs.E001")]
    return []


@register()
def check_job_log_settings(app_configs: object, **kwargs: object) -> list[Error]:
    """`JOB_LOGS` has the right types and ranges, its backend exists and takes its options."""
    job_logs = job_logs_setting()
    errors = [Error(problem, id="jobs.E002") for problem in setting_problems(job_logs)]
    if errors:
        return errors
    try:
        cls = backend_class()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="jobs.E003")]
    return [Error(problem, id="jobs.E004") for problem in unknown_options(cls, job_logs["OPTIONS"])]


@register()
def check_broker_redelivery(app_configs: object, **kwargs: object) -> list[Error]:
    """A task lost with its worker runs again after it may no longer be running, and before
    the stale-job check gives up on its job (`CELERY_BROKER_TRANSPORT_OPTIONS`)."""
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
    visibility = options.get("visibility_timeout", KOMBU_VISIBILITY_TIMEOUT)
    sweep = options.get("unacked_restore_interval", KOMBU_RESTORE_INTERVAL) * options.get(
        "unacked_restore_throttle", KOMBU_RESTORE_THROTTLE
    )
    time_limit = settings.CELERY_TASK_TIME_LIMIT
    errors = []
    if visibility <= time_limit:
        errors.append(
            Error(
                f"the broker's visibility timeout ({visibility:g} s) must exceed the task time"
                f" limit ({time_limit:g} s): a task still running would be delivered again",
                hint="raise AMI_BROKER_VISIBILITY_TIMEOUT or lower AMI_TASK_SOFT_TIME_LIMIT",
                id="jobs.E005",
            )
        )
    if visibility + sweep >= settings.JOB_STALE_AFTER:
        errors.append(
            Error(
                f"a task lost with its worker comes back after up to {visibility + sweep:g} s"
                f" (visibility timeout + restore sweep), not before the stale-job check closes"
                f" its job ({settings.JOB_STALE_AFTER:g} s without a heartbeat)",
                hint="lower AMI_BROKER_VISIBILITY_TIMEOUT or AMI_BROKER_RESTORE_INTERVAL, or"
                " raise AMI_JOB_STALE_AFTER",
                id="jobs.E006",
            )
        )
    return errors
