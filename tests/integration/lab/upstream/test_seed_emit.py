"""How the upstream's emit loses lines: its read-modify-write of the JSON column, step by step.

Two writers (two `Job` instances, as two processes hold) are interleaved at the one step that
matters: B's whole emit runs between A's read (`refresh_from_db`) and A's save. Deterministic,
in one thread, so a shortfall cannot come from anything else (the column's cap, a crash).
"""

from __future__ import annotations

import logging

import pytest

from ami.jobs.models import Job
from ami_lab.upstream.seed_emit import SeedJobLogHandler

pytestmark = pytest.mark.django_db


def record(message: str) -> logging.LogRecord:
    return logging.makeLogRecord({"msg": message, "levelno": logging.INFO, "levelname": "INFO"})


def stored(job: Job) -> list[str]:
    """The column's lines as the database holds them, without their timestamps."""
    legacy_logs = Job.objects.values_list("legacy_logs", flat=True).get(pk=job.pk)
    return [line.split("] ", 1)[1] for line in legacy_logs["stdout"]]


def test_emits_one_after_the_other_keep_both_lines(job):
    writer_a = SeedJobLogHandler(Job.objects.get(pk=job.pk))
    writer_b = SeedJobLogHandler(Job.objects.get(pk=job.pk))
    writer_a.emit(record("from A"))
    writer_b.emit(record("from B"))
    assert stored(job) == ["INFO from B", "INFO from A"]


def test_an_emit_between_a_read_and_its_save_is_overwritten(job):
    writer_a = SeedJobLogHandler(Job.objects.get(pk=job.pk))
    writer_b = SeedJobLogHandler(Job.objects.get(pk=job.pk))
    seen_before_a_saves: list[str] = []
    save_a = writer_a.job.save

    def b_emits_then_a_saves(*args, **kwargs) -> None:
        writer_b.emit(record("from B"))  # A has read the column and prepended its line
        seen_before_a_saves.extend(stored(job))
        save_a(*args, **kwargs)  # writes back the column as A read it: without B's line

    writer_a.job.save = b_emits_then_a_saves
    writer_a.emit(record("from A"))
    assert seen_before_a_saves == ["INFO from B"]  # B's line was stored...
    assert stored(job) == ["INFO from A"]  # ...and A's save overwrote it
