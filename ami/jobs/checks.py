"""Django system checks for the jobs settings (run by `ami check`, `migrate`, the web server)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured

from ami.jobs.logging.handler import backend_class
from ami.jobs.logging.retention import parse_age
from ami.jobs.logging.validation import RULES, setting_problems


@register()
def check_job_log_retention(app_configs: object, **kwargs: object) -> list[Error]:
    if not isinstance(settings.JOB_LOG_RETENTION, str) or not settings.JOB_LOG_RETENTION:
        return []
    try:
        parse_age(settings.JOB_LOG_RETENTION)
    except ValueError as exc:
        return [Error(f"AMI_JOB_LOG_RETENTION: {exc}", id="jobs.E001")]
    return []


@register()
def check_job_log_settings(app_configs: object, **kwargs: object) -> list[Error]:
    """Every `JOB_LOG_*` setting has the right type and range, and the backend exists."""
    values = {name: getattr(settings, name) for name in RULES if hasattr(settings, name)}
    errors = [Error(problem, id="jobs.E002") for problem in setting_problems(values)]
    if not errors:
        try:
            backend_class()
        except ImproperlyConfigured as exc:
            errors.append(Error(str(exc), id="jobs.E003"))
    return errors
