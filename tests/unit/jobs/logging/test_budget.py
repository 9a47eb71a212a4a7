"""The per-job log budget's policy, on the `memory` backend (its ledger in this process)."""

from __future__ import annotations

import json
import logging

import psycopg
import pytest

from ami.jobs.logging.backends.memory import MemoryBackend
from ami.jobs.logging.budget import JobBudget, Limits, context_bytes, line_bytes
from ami.jobs.logging.budget_ledger import LocalLedger
from ami.jobs.logging.config import from_environ
from ami.jobs.logging.rows import LogRow
from ami.jobs.logging.validation import setting_problems

JOB = 7


def write(backend: MemoryBackend, lines: int, *, warn_every: int = 0) -> None:
    for seq in range(lines):
        level = logging.WARNING if warn_every and seq % warn_every == 0 else logging.INFO
        backend.emit(JOB, level, f"line {seq}", {"seq": seq})


def seqs(backend: MemoryBackend, *, below_warning: bool = True) -> list[int]:
    return [
        row.context["seq"]
        for row in backend.lines(JOB)
        if (row.level < logging.WARNING) == below_warning and "seq" in row.context
    ]


def elided(backend: MemoryBackend) -> tuple[int, int]:
    counts = backend._budget.ledger.counts.get(JOB, [0, 0, 0, 0])
    return counts[2], counts[3]


def test_under_the_budget_every_line_is_stored_and_nothing_elided():
    backend = MemoryBackend(budget_lines=100, budget_tail=5)
    write(backend, 50)
    backend.flush()
    assert seqs(backend) == list(range(50))
    assert elided(backend) == (0, 0)


def test_past_the_budget_the_head_the_tail_and_every_warning_are_kept():
    backend = MemoryBackend(budget_lines=100, budget_tail=5)
    write(backend, 1000, warn_every=10)
    backend.flush()
    info = seqs(backend)
    warnings = seqs(backend, below_warning=False)
    head = Limits(lines=100).head[0]
    assert len(info) <= 100
    assert info[:head] == [s for s in range(1000) if s % 10][:head]  # the first lines
    assert info[-5:] == [995, 996, 997, 998, 999]  # the last lines
    assert warnings == list(range(0, 1000, 10))  # every warning, never counted
    emitted_info = [s for s in range(1000) if s % 10]
    missing = [s for s in emitted_info if s not in set(info)]
    sizes = {
        s: line_bytes(LogRow(JOB, logging.INFO, f"line {s}", {"seq": s})) for s in emitted_info
    }
    assert elided(backend) == (len(missing), sum(sizes[s] for s in missing))


def test_the_bytes_budget_bounds_the_stored_bytes():
    backend = MemoryBackend(budget_lines=0, budget_bytes=5000, budget_tail=3)
    write(backend, 1000)
    backend.flush()
    stored = [row for row in backend.lines(JOB) if row.level < logging.WARNING]
    assert sum(line_bytes(row) for row in stored) <= 5000
    assert len(stored) < 1000 and seqs(backend)[-3:] == [997, 998, 999]
    assert elided(backend)[0] == 1000 - len(stored)


def test_the_reservations_reach_the_limit_exactly():
    ledger = LocalLedger()
    policy = JobBudget(Limits(lines=1000, tail=0), ledger)
    kept = policy.admit([LogRow(JOB, logging.INFO, f"l{i}") for i in range(5000)])
    assert len(kept) == 900  # the head share: the budget minus the 10 % tail share
    assert ledger.counts[JOB][0] == 900


def test_a_budget_of_zero_is_no_budget():
    backend = MemoryBackend(budget_lines=0, budget_bytes=0)
    write(backend, 300)
    backend.flush()
    assert len(seqs(backend)) == 300


def test_a_failing_ledger_fails_open_and_is_not_asked_on_every_line():
    class Down(LocalLedger):
        calls = 0

        def reserve(self, *args, **kwargs):
            Down.calls += 1
            raise psycopg.OperationalError("ledger down")

        def add_elided(self, *args, **kwargs):
            raise psycopg.OperationalError("ledger down")

    backend = MemoryBackend(budget_lines=100, budget_tail=5)
    backend._budget = JobBudget(backend.budget_limits, Down())
    write(backend, 50, warn_every=10)  # no exception reaches the caller
    backend.flush()
    assert Down.calls == 1  # then it stores without asking for RETRY_AFTER seconds
    assert len(seqs(backend)) == 45 and len(seqs(backend, below_warning=False)) == 5


def test_counts_the_ledger_could_not_take_are_added_at_a_later_flush():
    class Flaky(LocalLedger):
        down = False

        def add_elided(self, *args, **kwargs):
            if self.down:
                raise psycopg.OperationalError("ledger down")
            super().add_elided(*args, **kwargs)

    ledger = Flaky()
    backend = MemoryBackend(budget_lines=10_000, budget_tail=0)  # a chunk: 281 lines
    backend._budget = JobBudget(backend.budget_limits, ledger)
    write(backend, 9100)  # 100 past the head share: fewer than a chunk, counted at a flush
    ledger.down = True
    backend.flush()
    assert elided(backend) == (0, 0)
    ledger.down = False
    backend._budget._retry_at = 0.0  # the backoff is over
    backend.flush()
    assert elided(backend)[0] == 9100 - len(seqs(backend)) == 100


def test_the_soft_time_limit_is_never_swallowed():
    from celery.exceptions import SoftTimeLimitExceeded

    class Interrupted(LocalLedger):
        def reserve(self, *args, **kwargs):
            raise SoftTimeLimitExceeded()

    backend = MemoryBackend(budget_lines=100)
    backend._budget = JobBudget(backend.budget_limits, Interrupted())
    with pytest.raises(SoftTimeLimitExceeded):
        backend.emit(JOB, logging.INFO, "x", {})


def test_bytes_are_utf8_of_the_message_and_the_context_json():
    row = LogRow(JOB, logging.INFO, "é€", {"k": "ü"})
    assert line_bytes(row) == len("é€".encode()) + len('{"k": "ü"}'.encode())


def test_the_budget_options_are_validated_and_read_from_the_environment():
    options = from_environ({"AMI_JOB_LOG_MAX_LINES": "10", "AMI_JOB_LOG_MAX_BYTES": "x"})
    assert options["OPTIONS"] == {"budget_lines": 10, "budget_bytes": "x"}
    problems = setting_problems(options)
    assert len(problems) == 1 and "AMI_JOB_LOG_MAX_BYTES" in problems[0]
    with pytest.raises(ValueError, match="budget_tail"):
        MemoryBackend(budget_tail=-1)


CONTEXTS = [
    {}, {"a": 1}, {"writer": 1, "seq": 12345, "host": "h-1", "pid": -5}, {"k": "é"},
    {"k": 'a"b'}, {"k": "a\\b"}, {"k": "\n\x7f"}, {"k": True, "n": None, "f": False},
    {"k": 1.5}, {"k": [1, {"x": "y"}]}, {"é": 1}, {"": ""},
]  # fmt: skip


@pytest.mark.parametrize("context", CONTEXTS)
def test_the_quick_context_size_is_the_size_of_its_json(context):
    assert context_bytes(context) == len(json.dumps(context, ensure_ascii=False).encode())
