"""The load test names the lines it lost: id, pid, emit time, job, kill, console text."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict

from ami.jobs.logging import JOB_LOGGER_NAME, job_logger
from ami_lab.loadtest import verdict
from ami_lab.loadtest.ledger import Emitted, emitted_lines, install, parse_ledger_row
from ami_lab.loadtest.lost_lines import MAX_DESCRIBED, console_lines, describe_lost
from ami_lab.loadtest.report import ModeOutcome

A, B, C = "a" * 32, "b" * 32, "c" * 32


def test_the_ledger_records_the_job_each_line_was_logged_for(tmp_path):
    ledger = install(tmp_path)
    try:
        job_logger(7).info("one")
        job_logger(8).info("two")
    finally:
        logging.getLogger(JOB_LOGGER_NAME).removeFilter(ledger)
    assert sorted(line.job_id for line in emitted_lines(tmp_path)) == [7, 8]


def test_ledger_rows_without_a_job_still_parse():
    assert parse_ledger_row(f"{A} 12.5", 9) == Emitted(A, 12.5, 9, False, None)
    assert parse_ledger_row(f"{A} 12.5 hostile", 9) == Emitted(A, 12.5, 9, True, None)
    assert parse_ledger_row(f"{A} 12.5 job=4 hostile", 9) == Emitted(A, 12.5, 9, True, 4)
    assert parse_ledger_row(A, 9) is None


def test_console_lines_are_found_by_their_tag():
    logs = [
        ("celery-results.log", f"12:00 INFO ami.jobs.job: Saved image 3 lt={A}"),
        ("celery-jobs.log", f"12:01 INFO ami.jobs.job: Collected lt={B}"),
    ]
    assert console_lines(logs, {A, C}) == {
        A: f"celery-results.log: 12:00 INFO ami.jobs.job: Saved image 3 lt={A}"
    }


def test_lost_lines_carry_pid_time_job_kill_and_console_unexpected_first():
    lost = [
        Emitted(A, 100.0, 11, job_id=4),  # its process was killed 0.2 s later: in flight
        Emitted(B, 90.0, 12, job_id=3),  # never killed
    ]
    logs = [("celery-results.log", f"INFO ami.jobs.job: Result for image 7 lt={B}")]
    described = describe_lost(lost, {11: 100.2}, in_flight=[A], log_lines=logs)
    assert [line.line_id for line in described] == [B, A]
    first, second = described
    assert (first.pid, first.job_id, first.killed, first.killed_at) == (12, 3, False, None)
    assert not first.in_flight and first.console.endswith(f"Result for image 7 lt={B}")
    assert (second.killed, second.killed_at, second.in_flight) == (True, 100.2, True)
    assert second.console == ""
    json.dumps([line.as_dict() for line in described])  # fits the JSON figures


def test_at_most_max_described_lines_are_described():
    lost = [Emitted(f"{i:032x}", float(i), 1) for i in range(MAX_DESCRIBED + 5)]
    assert len(describe_lost(lost, {}, [], [])) == MAX_DESCRIBED


def test_the_verdict_lists_the_unexpected_lost_lines():
    lost = [Emitted(A, 100.0, 11, job_id=4), Emitted(B, 90.0, 12, job_id=3)]
    logs = [("celery-results.log", f"INFO ami.jobs.job: Result for image 7 lt={B}")]
    result = ModeOutcome(mode="sync", status="SUCCESS", lines_lost=2, lines_lost_at_sigkill=1)
    result.lost_lines = [line.as_dict() for line in describe_lost(lost, {11: 100.2}, [A], logs)]
    text = verdict.message(verdict.failures([result]))
    assert "sync: 1 log lines lost" in text
    assert f"lost {B} job 3 pid 12 emitted" in text and "not killed" in text
    assert "console: celery-results.log: INFO ami.jobs.job: Result for image 7" in text
    assert A not in text  # in flight at SIGKILL: expected, not listed as a failure
    assert asdict(result)["lost_lines"][0]["line_id"] == B


def test_a_durable_mode_excuses_only_the_line_in_the_call_at_a_sigkill():
    """redis: a killed process's last line before the kill may be lost, no earlier one."""
    from ami_lab.loadtest.runner import in_call_at_kill

    earlier, last, after = Emitted(A, 10.0, 5), Emitted(B, 10.5, 5), Emitted(C, 11.5, 6)
    emitted = [earlier, last, after, Emitted("d" * 32, 12.0, 5)]  # after the kill: not 5's
    kills = {5: 11.0}
    assert in_call_at_kill([earlier, last], emitted, kills) == [B]
    assert in_call_at_kill([earlier], emitted, kills) == []
    assert in_call_at_kill([after], emitted, kills) == []
