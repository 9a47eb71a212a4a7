"""Django system checks for the jobs settings (run by `ami check`, `migrate`, the web server)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register

from ami.jobs.logging.retention import parse_age


@register()
def check_job_log_retention(app_configs: object, **kwargs: object) -> list[Error]:
    if not settings.JOB_LOG_RETENTION:
        return []
    try:
        parse_age(settings.JOB_LOG_RETENTION)
    except ValueError as exc:
        return [Error(f"AMI_JOB_LOG_RETENTION: {exc}", id="jobs.E001")]
    return []
