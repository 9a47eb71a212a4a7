"""Error lines in the workers' output: counted by kind and tied to the fault that caused them."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from ami_lab.loadtest.faults import FaultEvent

ERROR_KINDS: list[tuple[str, re.Pattern[str]]] = [
    # Celery reporting a killed pool process: the fault announcing itself, not a cascade.
    ("worker_killed", re.compile(r"WorkerLostError|signal 9|SIGKILL")),
    ("another_command_in_progress", re.compile(r"another command is already in progress")),
    ("soft_time_limit", re.compile(r"SoftTimeLimitExceeded|soft time limit", re.I)),
    ("idle_in_transaction_kill", re.compile(r"idle.in.transaction", re.I)),
    ("lock_timeout", re.compile(r"lock timeout", re.I)),
    (
        "connection_killed",
        re.compile(
            r"terminating connection|server closed the connection|connection is closed"
            r"|consuming input failed|connection already closed",
            re.I,
        ),
    ),
]
# A log record at ERROR or above ("2026-11-28 22:30:00,123 ERROR name: message") or a
# line that a component printed as its own error report ("... ERROR ..." / "error:").
ERROR_LINE = re.compile(r"\b(ERROR|CRITICAL)\b|^error:", re.M)
# Celery re-logs a child's stderr line as "WARNING celery.redirected: <the line>"; the
# timestamp that counts is the original one, at the start of the redirected text.
REDIRECTED = re.compile(r"celery\.redirected: ")
TIMESTAMP = re.compile(r"^\[?(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d)(?:[,.](\d{1,6}))?")
FAULT_REPORTS = frozenset({"worker_killed"})
FAULT_WINDOW = 10.0  # seconds after a fault in which its error lines are counted


@dataclass
class ErrorLine:
    kind: str
    at: float | None  # epoch seconds, when the line carries a timestamp
    text: str


def kind_of(text: str) -> str:
    for kind, pattern in ERROR_KINDS:
        if pattern.search(text):
            return kind
    return "other"


def parse(lines: Iterable[str]) -> list[ErrorLine]:
    """The error lines among `lines` (traceback continuation lines are not counted)."""
    found = []
    for line in lines:
        if not ERROR_LINE.search(line):
            continue
        original = REDIRECTED.split(line, maxsplit=1)[-1]
        found.append(ErrorLine(kind_of(line), _timestamp(original), line.rstrip()))
    return found


def by_kind(errors: list[ErrorLine]) -> dict[str, int]:
    counts = Counter(error.kind for error in errors)
    return {kind: counts.get(kind, 0) for kind, _ in ERROR_KINDS} | {"other": counts["other"]}


def most_per_fault(errors: list[ErrorLine], events: list[FaultEvent]) -> int:
    """The most error lines that followed a single fault (within its window, before the next)."""
    if not events:
        return 0
    starts = sorted(event.at for event in events)
    counts = Counter()
    for error in errors:
        if error.at is None:
            continue
        preceding = [t for t in starts if t <= error.at < t + FAULT_WINDOW]
        if preceding:
            counts[preceding[-1]] += 1
    return max(counts.values(), default=0)


def _timestamp(line: str) -> float | None:
    match = TIMESTAMP.match(line)
    if not match:
        return None
    fraction = float(f"0.{match.group(2)}") if match.group(2) else 0.0
    return datetime.fromisoformat(match.group(1)).timestamp() + fraction
