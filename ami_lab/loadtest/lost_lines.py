"""Which lines were lost, and what is known about each: enough to tell a bug from a kill.

For each lost line: the process that emitted it, when, the job it was logged for, whether
and when that process was SIGKILLed, whether that makes it "in flight at SIGKILL", and the
line as the process echoed it to its console log (found by its ` lt=<id>` tag).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from ami_lab.loadtest.ledger import LINE_ID_PATTERN, Emitted

MAX_DESCRIBED = 20  # lost lines described in the figures and the verdict
MAX_CONSOLE_CHARS = 300


@dataclass(frozen=True)
class LostLine:
    line_id: str
    pid: int
    emitted_at: float  # time.time() when the ledger recorded it
    job_id: int | None  # the job it was logged for (None: an old ledger without it)
    killed: bool  # its process was SIGKILLed by a fault
    killed_at: float | None  # time.time() of that SIGKILL
    in_flight: bool  # counted as "in flight at SIGKILL" (an expected loss)
    console: str  # "<log file>: <line>" as echoed in the process logs, "" if not found

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """One line for a report: id, job, pid, emit time, kill, console text."""
        job = f" job {self.job_id}" if self.job_id is not None else ""
        if self.killed_at is not None:
            kill = f"killed at {_clock(self.killed_at)} ({self.killed_at - self.emitted_at:+.3f} s)"
        else:
            kill = "not killed"
        console = f"; console: {self.console}" if self.console else "; not in the console logs"
        emitted = _clock(self.emitted_at)
        return f"{self.line_id}{job} pid {self.pid} emitted {emitted}, {kill}{console}"


def _clock(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S.%f")[:-3]


def console_lines(log_lines: Iterable[tuple[str, str]], wanted: set[str]) -> dict[str, str]:
    """`lt=<id>` -> "<file>: <line>" for the wanted ids, from (file name, line) pairs."""
    found: dict[str, str] = {}
    for name, text in log_lines:
        if " lt=" not in text:
            continue
        for line_id in LINE_ID_PATTERN.findall(text):
            if line_id in wanted and line_id not in found:
                found[line_id] = f"{name}: {text.strip()[:MAX_CONSOLE_CHARS]}"
    return found


def read_logs(logs_dir: Path) -> list[tuple[str, str]]:
    """(file name, line) for every line of the run's process logs."""
    pairs = []
    for path in sorted(logs_dir.glob("*.log")):
        pairs.extend((path.name, line) for line in path.read_text(errors="replace").splitlines())
    return pairs


def describe_lost(
    lost: list[Emitted],
    kills: dict[int, float],
    in_flight: Iterable[str],
    log_lines: Iterable[tuple[str, str]],
    limit: int = MAX_DESCRIBED,
) -> list[LostLine]:
    """The first `limit` lost lines (by emit time), unexpected losses first."""
    expected = set(in_flight)
    chosen = sorted(lost, key=lambda line: (line.line_id in expected, line.at))[:limit]
    consoles = console_lines(log_lines, {line.line_id for line in chosen})
    return [
        LostLine(
            line_id=line.line_id,
            pid=line.pid,
            emitted_at=line.at,
            job_id=line.job_id,
            killed=line.pid in kills,
            killed_at=kills.get(line.pid),
            in_flight=line.line_id in expected,
            console=consoles.get(line.line_id, ""),
        )
        for line in chosen
    ]
