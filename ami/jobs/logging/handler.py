"""`JobLogHandler`: stores records of the `ami.jobs.job` logger through the configured backend.

The backend comes from `JOB_LOGS["BACKEND"]` (a short name or a dotted path, loaded with
`import_string`, as Django does for cache and session backends), is built once per process
with `JOB_LOGS["OPTIONS"]` as its constructor keywords; `JOB_LOGS["DUAL_WRITE"]` adds the
legacy JSON column as a secondary target. See `ami.jobs.logging.config`.
"""

from __future__ import annotations

import logging
import operator
import os
import threading
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from ami.jobs.logging.backends import BACKEND_ALIASES
from ami.jobs.logging.backends.base import JobLogBackend
from ami.jobs.logging.config import job_logs_setting, label
from ami.jobs.logging.errors import FailureReporter
from ami.jobs.logging.process import HOSTNAME, current_pid, current_task_id
from ami.jobs.logging.validation import setting_problems, unknown_options

DUAL_WRITE_FACTORY = "ami.jobs.logging.backends.legacy_json.dual_write_target"
MAX_LEVEL = 32767  # the `level` column is a smallint

_backend: JobLogBackend | None = None
_backend_lock = threading.Lock()
_in_emit = threading.local()
# Records dropped before they reach a backend (unformattable, no usable job id).
handler_reporter = FailureReporter("job log handler")


def backend_class(name: str | None = None) -> type[JobLogBackend]:
    """The backend class for a short name or dotted path (default: `JOB_LOGS["BACKEND"]`)."""
    name = name or job_logs_setting()["BACKEND"]
    where = label("BACKEND")
    try:
        cls = import_string(BACKEND_ALIASES.get(name, name))
    except ImportError as exc:
        choices = ", ".join(BACKEND_ALIASES)
        raise ImproperlyConfigured(
            f"{where}={name!r} is not a job log backend: use one of {choices} "
            f"or a dotted path to a JobLogBackend subclass ({exc})"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, JobLogBackend)):
        raise ImproperlyConfigured(f"{where}={name!r} is not a JobLogBackend subclass")
    return cls


def configuration_problems() -> list[str]:
    """What is wrong with `JOB_LOGS`: bad values, an unknown backend, options it does not take.

    One list for the system check and for every process's startup.
    """
    job_logs = job_logs_setting()
    problems = setting_problems(job_logs)
    if problems:
        return problems
    try:
        cls = backend_class()
    except ImproperlyConfigured as exc:
        return [str(exc)]
    return unknown_options(cls, job_logs["OPTIONS"])


def build_backend(name: str | None = None, *, dual_write: bool | None = None) -> JobLogBackend:
    """Build the backend named `name` (default: `JOB_LOGS["BACKEND"]`) with `JOB_LOGS["OPTIONS"]`.

    An option the backend does not take is an ImproperlyConfigured error, as at startup.
    """
    job_logs = job_logs_setting()
    cls = backend_class(name)
    options = job_logs["OPTIONS"]
    problems = unknown_options(cls, options)
    if problems:
        raise ImproperlyConfigured("; ".join(problems))
    dual_write = job_logs["DUAL_WRITE"] if dual_write is None else dual_write
    if dual_write and cls.dual_writable:
        options = {**options, "secondary": import_string(DUAL_WRITE_FACTORY)}
    return cls(**options)


def get_backend() -> JobLogBackend:
    """This process's backend, built on first use."""
    global _backend
    if _backend is None:
        with _backend_lock:
            if _backend is None:
                _backend = build_backend()
    return _backend


def reset_backend(**_: Any) -> None:
    """Flush and forget the current backend (settings changed, tests)."""
    global _backend
    with _backend_lock:
        old, _backend = _backend, None
    if old is not None:
        old.close(flush_timeout())


def flush_timeout() -> float:
    """Seconds a flush waits by default (`JOB_LOGS["FLUSH_TIMEOUT"]`)."""
    return job_logs_setting()["FLUSH_TIMEOUT"]


def flush_job_logs(timeout: float | None = None) -> bool:
    """Write what the backend holds; return False if `timeout` seconds were not enough."""
    if _backend is None:
        return True
    return _backend.flush(flush_timeout() if timeout is None else timeout)


def record_context(record: logging.LogRecord) -> dict[str, Any]:
    """The caller's `extra`, plus where the line came from (host, pid, Celery task)."""
    context = {"host": HOSTNAME, "pid": current_pid()}
    task_id = current_task_id()
    if task_id is not None:
        context["task_id"] = task_id
    caller = getattr(record, "job_context", None)
    if caller:
        context.update(caller)  # the caller's values win
    return context


def as_job_id(value: object) -> int:
    """The job id of a record: an int, or a str of one; anything else is a TypeError/ValueError.

    A float is refused rather than truncated, so a line never lands in the wrong job's log.
    """
    if isinstance(value, bool):
        raise TypeError(f"job_id {value!r} is not a job id")
    if isinstance(value, str):
        return int(value)
    return operator.index(value)


def stored_level(levelno: object) -> int:
    """The record's level, within what the `level` column (smallint, >= 0) holds."""
    if not isinstance(levelno, int):
        return logging.NOTSET
    return min(max(levelno, 0), MAX_LEVEL)


def dropped_lines() -> int:
    """Lines this process dropped: unusable records plus rows the database refused."""
    backend_dropped = _backend.reporter.dropped_lines if _backend is not None else 0
    return handler_reporter.dropped_lines + backend_dropped


class JobLogHandler(logging.Handler):
    """Store each record that carries a `job_id` (see `ami.jobs.logging.job_logger`).

    Never raises into the caller (but Celery's soft time limit): a record that cannot be
    formatted or has no usable job id is dropped and counted (`dropped_lines()`), reported
    on stderr once per burst, like a failed write.
    """

    def handle(self, record: logging.LogRecord) -> bool:
        # Without the Handler's lock: the backend is thread-safe, and a per-process lock
        # would serialise every thread's database write.
        if not self.filter(record):
            return False
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        job_id = getattr(record, "job_id", None)
        if job_id is None or getattr(_in_emit, "active", False):
            return
        _in_emit.active = True
        try:
            self._store(record, job_id)
        except SoftTimeLimitExceeded:
            raise
        except Exception as exc:  # noqa: BLE001 - a caller's bad record must not fail the caller
            handler_reporter.refused(exc)
        finally:
            _in_emit.active = False

    def _store(self, record: logging.LogRecord, job_id: object) -> None:
        backend = get_backend()
        job = as_job_id(job_id)
        backend.emit(
            job, stored_level(record.levelno), self._message(record), record_context(record)
        )

    def _message(self, record: logging.LogRecord) -> str:
        """`self.format(record)`; with no formatter set and nothing to append (traceback,
        stack) that is `getMessage()`, without the default Formatter's steps per line."""
        if self.formatter is None and not (record.exc_info or record.exc_text or record.stack_info):
            return record.getMessage()
        return self.format(record)


def _after_fork_in_child() -> None:
    # A lock held by another thread at fork time would stay held forever in the child.
    global _backend_lock
    _backend_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _on_setting_changed(setting: str, **_: Any) -> None:
    if setting == "JOB_LOGS":
        reset_backend()


setting_changed.connect(_on_setting_changed)
