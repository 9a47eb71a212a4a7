# ruff: noqa: E501  (log lines are quoted whole)
from datetime import datetime

from ami_lab.loadtest.error_lines import by_kind, most_per_fault, parse
from ami_lab.loadtest.faults import FaultEvent

LOG = """\
2026-11-28 10:00:01,000 INFO ami.jobs: saved result
2026-11-28 10:00:02,500 ERROR ami.jobs: Failed to save logs for job #4: SoftTimeLimitExceeded()
Traceback (most recent call last):
  File "x.py", line 1, in <module>
2026-11-28 10:00:02,600 ERROR ami.jobs: sending query failed: another command is already in progress
2026-11-28 10:00:02,700 ERROR ami.jobs: terminating connection due to idle-in-transaction timeout
2026-11-28 10:00:30,000 ERROR ami.jobs: server closed the connection unexpectedly
2026-11-28 10:00:31,000 CRITICAL celery: something else
2026-11-28 10:00:40,000 WARNING celery.redirected: 2026-11-28 10:00:38,000 ERROR ami.jobs.logging: job log (sync) write failed (OperationalError: canceling statement due to lock timeout)
"""


def at(clock: str) -> float:
    return datetime.fromisoformat(f"2026-11-28 {clock}").timestamp()


def test_error_lines_are_counted_by_kind_without_traceback_lines():
    errors = parse(LOG.splitlines())
    assert by_kind(errors) == {
        "worker_killed": 0,
        "another_command_in_progress": 1,
        "soft_time_limit": 1,
        "idle_in_transaction_kill": 1,
        "lock_timeout": 1,
        "connection_killed": 1,
        "other": 1,
    }


def test_error_lines_are_tied_to_the_latest_preceding_fault():
    errors = parse(LOG.splitlines())
    events = [FaultEvent("a", at("10:00:02")), FaultEvent("b", at("10:00:29"))]
    assert most_per_fault(errors, events) == 3
    # The redirected line counts at its own time (10:00:38), inside fault b's window.
    assert most_per_fault(errors, [FaultEvent("b", at("10:00:29"))]) == 3
    assert most_per_fault(errors, []) == 0
