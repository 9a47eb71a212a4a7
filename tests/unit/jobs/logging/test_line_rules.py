"""Line rules without a database: sanitising, storm collapse, failure reports, legacy parsing."""

from __future__ import annotations

import logging
import math
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone

from ami.jobs.logging.errors import FailureReporter
from ami.jobs.logging.legacy import format_entry, legacy_lines, parse_stdout_entry
from ami.jobs.logging.rows import LogRow, uuid7
from ami.jobs.logging.sanitize import clean_context, clean_message
from ami.jobs.logging.storms import MAX_TRACKED_JOBS, RepeatCollapser


def test_clean_message_truncates_with_a_marker_and_strips_nul():
    assert clean_message("a\x00b", 10) == "ab"
    assert clean_message("x" * 25, 10) == "x" * 10 + " [... truncated 15 characters]"


def test_clean_context_is_json_safe():
    context = clean_context({"s": "a\x00b", "obj": object, "nan": math.nan, 3: [1, (2, "\x00")]})
    assert context["s"] == "ab" and context["nan"] == "nan" and context["3"] == [1, [2, ""]]
    assert context["obj"] == str(object)
    assert clean_context({"big": "x" * 10_000})["context_truncated"] is True


def row(job: int, message: str, level: int = logging.INFO) -> LogRow:
    return LogRow(job, level, message)


def test_identical_lines_are_counted_then_written_as_one_row():
    collapser = RepeatCollapser(window=1.0)
    assert collapser.feed(row(1, "same"), now=0.0) == ([row(1, "same")], False)
    for i in range(5):
        assert collapser.feed(row(1, "same"), now=0.1 + i / 100) == ([], True)
    out, pending = collapser.feed(row(1, "different"), now=0.2)
    assert [r.message for r in out] == ["last message repeated 5 times", "different"]
    assert out[0].context["repeated"] == 5 and not pending


def test_a_long_storm_writes_a_count_every_window():
    collapser = RepeatCollapser(window=1.0)
    written = []
    for i in range(301):  # 3 seconds of the same line, every 10 ms
        written += collapser.feed(row(1, "same"), now=i / 100)[0]
    written += collapser.due(everything=True)
    counts = [r.context.get("repeated", 1) for r in written]
    assert sum(counts) == 301 and len(written) <= 5


def test_counts_are_per_job_and_level():
    collapser = RepeatCollapser(window=1.0)
    collapser.feed(row(1, "same"), now=0)
    assert collapser.feed(row(2, "same"), now=0)[0] == [row(2, "same")]
    assert collapser.feed(row(1, "same", logging.ERROR), now=0)[0] == [
        row(1, "same", logging.ERROR)
    ]


def test_a_pending_count_is_due_after_the_window():
    collapser = RepeatCollapser(window=1.0)
    collapser.feed(row(1, "same"), now=0)
    collapser.feed(row(1, "same"), now=0.5)
    assert collapser.due(now=1.0) == []
    assert collapser.next_due_in(now=1.0) == 0.5
    assert [r.message for r in collapser.due(now=1.6)] == ["last message repeated 1 times"]
    assert not collapser.pending() and collapser.next_due_in() is None


def test_forgetting_an_old_job_writes_its_pending_count():
    collapser = RepeatCollapser(window=10.0)
    collapser.feed(row(0, "same"), now=0)
    collapser.feed(row(0, "same"), now=0)
    out = []
    for job in range(1, MAX_TRACKED_JOBS + 1):
        out += collapser.feed(row(job, "x"), now=0)[0]
    assert "last message repeated 1 times" in [r.message for r in out if r.job_id == 0]


def test_failure_reporter_prints_once_per_burst(capsys):
    reporter = FailureReporter("job log (test)")
    for _ in range(3):
        reporter.failed(OSError("down"), 2)
    reporter.succeeded()
    reporter.failed(OSError("down again"), 1)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert "2 line(s) lost" in lines[0] and "7 line(s) lost" in lines[1]
    assert reporter.lost_lines == 7


def test_legacy_entries_parse_back_to_lines():
    line = parse_stdout_entry("[2024-05-01 12:00:03] WARNING disk\nfull")
    assert (line.level, line.message) == (logging.WARNING, "disk\nfull")
    assert line.created_at == datetime(2024, 5, 1, 12, 0, 3, tzinfo=UTC)
    assert parse_stdout_entry("free text").created_at is None
    assert legacy_lines(None) == [] and legacy_lines({"stdout": None}) == []


def test_write_keys_are_uuid7_time_ordered_and_unique():
    first = uuid7()
    time.sleep(0.002)  # not synchronisation: the next key must fall in a later millisecond
    later = [uuid7() for _ in range(1000)]
    assert {key.version for key in [first, *later]} == {7}
    assert {key.variant for key in later} == {uuid.RFC_4122}
    assert all(key > first for key in later)
    assert len(set(later)) == 1000
    row = LogRow(1, logging.INFO, "keyed")
    assert uuid.UUID(row.key_text) == uuid.UUID(int=row.key)


def test_a_legacy_entry_is_written_and_read_back_by_one_module():
    made = datetime(2024, 5, 1, 14, 0, 3, tzinfo=timezone(timedelta(hours=2)))
    entry = format_entry(made, logging.WARNING, "disk full")
    assert entry == "[2024-05-01 12:00:03] WARNING disk full"  # always UTC
    line = parse_stdout_entry(entry)
    assert (line.level, line.message, line.created_at) == (logging.WARNING, "disk full", made)
    assert line.created_at.tzinfo is UTC
