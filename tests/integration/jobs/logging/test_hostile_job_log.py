"""Hostile content through `job_logger(job_id)`, for every write backend, on real PostgreSQL.

After a hostile line the backend must still work: the line is stored (made safe) or
counted as lost, `flush_job_logs()` returns True, a background writer thread is still
alive, and the next normal line is stored.
"""

from __future__ import annotations

import threading
import uuid

import pytest

from ami.jobs.logging import job_logger
from ami.jobs.logging.handler import flush_job_logs
from ami.jobs.models import Job, JobLog
from tests.support import hostile
from tests.support.logs import LOGS_DB

pytestmark = [LOGS_DB, pytest.mark.usefixtures("fresh_log_backend")]

BACKENDS = ["sync", "buffered", "redis", "legacy_json", "memory"]
FLUSH_TIMEOUT = 10.0  # seconds
FLUSHER_THREAD = "ami-joblog-flusher"  # the buffered backend's writer thread


def stored_messages(backend, job: Job) -> list[str]:
    """Every message stored for `job`, wherever this backend stores it."""
    if backend.name == "memory":
        return [row.message for row in backend.lines(job.pk)]
    if backend.name == "legacy_json":
        job.refresh_from_db(fields=["legacy_logs"])
        return [*job.legacy_logs.get("stdout", []), *job.legacy_logs.get("stderr", [])]
    return list(JobLog.objects.filter(job_id=job.pk).values_list("message", flat=True))


def assert_still_works(backend, job: Job, marker: str, lost_before: int) -> None:
    flushed = flush_job_logs(FLUSH_TIMEOUT)
    messages = stored_messages(backend, job)
    lost = backend.reporter.lost_lines - lost_before
    assert flushed, "flush_job_logs() returned False after a hostile line"
    assert any(marker in m for m in messages) or lost > 0, "hostile line neither stored nor lost"
    after = f"normal line after {marker}"
    job_logger(job.pk).info(after)
    assert flush_job_logs(FLUSH_TIMEOUT), "flush_job_logs() returned False after a normal line"
    assert after in "\n".join(stored_messages(backend, job)), "the next normal line was lost"
    if backend.name == "buffered":
        alive = [t for t in threading.enumerate() if t.name == FLUSHER_THREAD and t.is_alive()]
        assert alive, "the buffered backend's writer thread died"


@pytest.mark.parametrize("case", list(hostile.STRINGS))
@pytest.mark.parametrize("backend_name", BACKENDS)
def test_hostile_message_is_stored_or_counted(backend_name, case, job, use_backend):
    backend = use_backend(backend_name)
    marker = f"m{uuid.uuid4().hex}"
    lost_before = backend.reporter.lost_lines
    job_logger(job.pk).info("%s %s", marker, hostile.STRINGS[case])
    assert_still_works(backend, job, marker, lost_before)


@pytest.mark.parametrize("case", [*hostile.STRINGS, *hostile.NUMBERS, "deep_json"])
@pytest.mark.parametrize("backend_name", BACKENDS)
def test_hostile_extra_is_stored_or_counted(backend_name, case, job, use_backend):
    backend = use_backend(backend_name)
    marker = f"m{uuid.uuid4().hex}"
    value = hostile.all_values()[case]
    lost_before = backend.reporter.lost_lines
    job_logger(job.pk).info(
        "extra %s", marker, extra={"value": value, case: value, "nested": [value]}
    )
    assert_still_works(backend, job, marker, lost_before)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_hostile_keys_in_extra_are_stored_or_counted(backend_name, job, use_backend):
    backend = use_backend(backend_name)
    marker = f"m{uuid.uuid4().hex}"
    lost_before = backend.reporter.lost_lines
    keys = {hostile.STRINGS[case][:100] or "(empty)": case for case in hostile.STRINGS}
    job_logger(job.pk).info("keys %s", marker, extra=keys)
    assert_still_works(backend, job, marker, lost_before)
