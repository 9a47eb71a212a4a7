"""The `JOB_LOGS` setting: one dict for the job log, shaped like Django's `CACHES`.

```python
JOB_LOGS = {
    "BACKEND": "buffered",          # a short name (backends.BACKEND_ALIASES) or a dotted path
    "OPTIONS": {"interval": 0.5},   # the backend's constructor keywords; absent: its defaults
                                    # (also the per-job budget: "budget_lines", ...)
    "DUAL_WRITE": False,            # also write the legacy JSON column
    "LEVEL": "INFO",                # lowest level stored, whatever the console's level
    "FLUSH_TIMEOUT": 5.0,           # seconds a flush (task end, shutdown) waits
    "RETENTION": "90d",             # partitions of jobs final for longer are dropped ("": keep all)
    "RETENTION_INTERVAL": 86400.0,  # seconds between retention passes (Celery beat)
    "PARTITION": "day",             # one JobLog partition per "day" or "week" of job starts
    "DRAIN_INTERVAL": 5.0,          # seconds between drains of dead writers' Redis streams
}
```

A key left out takes its default from `DEFAULTS` (its only home); a backend option left out
takes the default of the backend's constructor. `ami/settings.py` builds the dict from the
operator's environment variables (`from_environ`), passing only those that are set.
This module reads no setting at import time, so `ami/settings.py` can import it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    "BACKEND": "sync",
    "DUAL_WRITE": False,
    "LEVEL": "INFO",
    "FLUSH_TIMEOUT": 5.0,  # seconds
    "RETENTION": "90d",
    "RETENTION_INTERVAL": 86_400.0,  # seconds
    "PARTITION": "day",
    "DRAIN_INTERVAL": 5.0,  # seconds between orphan drains of the redis backend (Celery beat)
}

# The operator's environment variables: names kept from before `JOB_LOGS` existed (the load
# test and the benchmarks set them in their child processes).
ENVIRONMENT: dict[str, str] = {
    "BACKEND": "JOB_LOG_BACKEND",
    "DUAL_WRITE": "JOB_LOG_DUAL_WRITE",
    "LEVEL": "JOB_LOG_LEVEL",
    "FLUSH_TIMEOUT": "JOB_LOG_FLUSH_TIMEOUT",
    "RETENTION": "AMI_JOB_LOG_RETENTION",
    "RETENTION_INTERVAL": "AMI_JOB_LOG_RETENTION_INTERVAL",
    "PARTITION": "AMI_JOB_LOG_PARTITION",
    "DRAIN_INTERVAL": "AMI_JOB_LOG_DRAIN_INTERVAL",
}
OPTION_ENVIRONMENT: dict[str, str] = {
    "max_message_chars": "JOB_LOG_MAX_MESSAGE_CHARS",
    "batch_size": "JOB_LOG_BUFFER_BATCH_SIZE",
    "interval": "JOB_LOG_BUFFER_INTERVAL",
    "max_lines": "JOB_LOG_BUFFER_MAX_LINES",
    "redis_timeout": "JOB_LOG_REDIS_TIMEOUT",
    "lease": "JOB_LOG_REDIS_LEASE",
    "budget_lines": "AMI_JOB_LOG_MAX_LINES",
    "budget_bytes": "AMI_JOB_LOG_MAX_BYTES",
    "budget_tail": "AMI_JOB_LOG_TAIL_LINES",
}

_FLAGS = {"1": True, "true": True, "yes": True, "on": True}
_FLAGS |= {"0": False, "false": False, "no": False, "off": False}


def _flag(raw: str) -> bool | str:
    return _FLAGS.get(raw.strip().lower(), raw)


def _parsed(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """`kind(raw)`, or the raw text if it does not parse: validation then names the variable
    instead of the process dying on a traceback while importing the settings."""

    def parse(raw: str) -> Any:
        try:
            return kind(raw)
        except ValueError:
            return raw

    return parse


_PARSERS: dict[str, Callable[[str], Any]] = {
    "DUAL_WRITE": _flag,
    "FLUSH_TIMEOUT": _parsed(float),
    "RETENTION_INTERVAL": _parsed(float),
    "DRAIN_INTERVAL": _parsed(float),
}
_OPTION_PARSERS: dict[str, Callable[[str], Any]] = {
    "max_message_chars": _parsed(int),
    "batch_size": _parsed(int),
    "interval": _parsed(float),
    "max_lines": _parsed(int),
    "redis_timeout": _parsed(float),
    "lease": _parsed(float),
    "budget_lines": _parsed(int),
    "budget_bytes": _parsed(int),
    "budget_tail": _parsed(int),
}


def from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    """`JOB_LOGS` from the environment variables that are set (and only those)."""
    job_logs: dict[str, Any] = {}
    for key, variable in ENVIRONMENT.items():
        if variable in environ:
            job_logs[key] = _PARSERS.get(key, str)(environ[variable])
    job_logs["OPTIONS"] = {
        option: _OPTION_PARSERS[option](environ[variable])
        for option, variable in OPTION_ENVIRONMENT.items()
        if variable in environ
    }
    return job_logs


def resolve(job_logs: Mapping[str, Any]) -> dict[str, Any]:
    """Every key of `job_logs`, with `DEFAULTS` for those left out."""
    return {**DEFAULTS, **job_logs, "OPTIONS": dict(job_logs.get("OPTIONS") or {})}


def job_logs_setting() -> dict[str, Any]:
    """This process's `JOB_LOGS`, complete (read at each call: tests override it)."""
    return resolve(settings.JOB_LOGS)


def label(key: str, option: str | None = None) -> str:
    """How messages name a value: its key in `JOB_LOGS` and its environment variable."""
    if option is None:
        where, variable = f'JOB_LOGS["{key}"]', ENVIRONMENT.get(key)
    else:
        where, variable = f'JOB_LOGS["OPTIONS"]["{option}"]', OPTION_ENVIRONMENT.get(option)
    return f"{where} (environment: {variable})" if variable else where
