"""Django system checks for the jobs settings (run by `ami check`, `migrate`, the web server)."""

from __future__ import annotations

from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured

from ami.jobs.logging.config import job_logs_setting, label
from ami.jobs.logging.handler import backend_class
from ami.jobs.logging.retention import parse_age
from ami.jobs.logging.validation import setting_problems, unknown_options


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
