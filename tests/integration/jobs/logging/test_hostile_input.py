"""Hostile content is normal input: every backend stores a safe version, raises nothing into
the caller, and keeps working (its writer thread alive, the next flush quick)."""

from __future__ import annotations

import math
import time

import pytest

from ami.jobs.logging.handler import dropped_lines, flush_job_logs
from ami.jobs.models import Job, JobLog
from tests.support.logs import LOGS_DB, stored_messages

pytestmark = LOGS_DB

BACKENDS = ["sync", "buffered", "redis", "legacy_json", "memory"]


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"x": value}
    return value


def cyclic() -> list:
    value: list = []
    value.append(value)
    return value


# (message, args, extra): each one broke a backend, the caller or the flusher before.
HOSTILE = {
    "lone surrogate in the message": ("bad \udc80 name", (), {}),
    "surrogate from an argument": ("file %s", ("x\udcff.jpg",), {}),
    "NUL in the message": ("nul \x00 here", (), {}),
    "control characters": ("bell \x07 esc \x1b del \x7f", (), {}),
    "surrogate in a context value": ("ctx", (), {"path": "a\udc80b"}),
    "surrogate in a context key": ("ctx", (), {"k\udc80": 1}),
    "NUL in the context": ("ctx", (), {"s": "a\x00b", "k\x00": 1}),
    "NaN and Infinity": ("ctx", (), {"nan": math.nan, "inf": math.inf, "ninf": -math.inf}),
    "bytes": ("ctx", (), {"raw": b"\x00\xff\xfe"}),
    "a set": ("ctx", (), {"tags": {"a", "b"}}),
    "an object": ("ctx", (), {"obj": object()}),
    "an unprintable object": ("ctx", (), {"obj": Unprintable()}),
    "deep nesting": ("ctx", (), {"deep": nested(5000)}),
    "a cycle": ("ctx", (), {"loop": cyclic()}),
    "non-str keys": ("ctx", (), {"nested": {("a", 1): 1, None: 2, 3.5: 3, b"k": 4}}),
    "a huge int": ("ctx", (), {"n": 10**5000}),
}


def stored_count(name: str, backend, job: Job) -> int:
    if name == "memory":
        return len(backend.lines(job.pk))
    if name == "legacy_json":
        job.refresh_from_db(fields=["legacy_logs"])
        return len(job.legacy_logs["stdout"])
    return JobLog.objects.filter(job=job).count()


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_content_is_stored_safely_and_the_next_line_too(case, name, job, use_backend):
    backend = use_backend(name)
    dropped_before = dropped_lines()
    message, args, extra = HOSTILE[case]
    job.logger.info(message, *args, extra=extra)  # raises nothing
    job.logger.info("the next, normal line")
    began = time.monotonic()
    assert flush_job_logs(5)
    assert time.monotonic() - began < 2.0
    assert stored_count(name, backend, job) == 2
    assert dropped_lines() == dropped_before and backend.reporter.lost_lines == 0


def test_a_lone_surrogate_keeps_the_buffered_flusher_alive(job, use_backend):
    """The reproduction of issue 9: after the bad line, nothing was stored, flushes timed out."""
    use_backend("buffered")
    job.logger.info("bad \udc80 name")
    for i in range(5):
        job.logger.info("line %d", i)
    began = time.monotonic()
    assert flush_job_logs(5)
    assert time.monotonic() - began < 2.0
    assert stored_messages(job.pk) == ["bad \ufffd name"] + [f"line {i}" for i in range(5)]
    job.logger.info("later")
    assert flush_job_logs(5)
    assert stored_messages(job.pk)[-1] == "later"


@pytest.mark.parametrize("name", ["sync", "buffered", "redis"])
def test_a_row_the_database_refuses_is_dropped_and_counted_alone(name, job, use_backend):
    """A job id beyond bigint passes the handler but not PostgreSQL: that row only is lost."""
    backend = use_backend(name)
    dropped_before = dropped_lines()
    job.logger.info("before")
    Job(pk=2**63 + 1).logger.info("for a job id PostgreSQL cannot hold")
    job.logger.info("after")
    assert flush_job_logs(5)
    assert stored_messages(job.pk) == ["before", "after"]
    assert backend.reporter.dropped_lines == 1
    assert dropped_lines() == dropped_before + 1
