"""The figures of one mode's run, and the side-by-side table."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table


@dataclass
class ModeOutcome:
    mode: str
    status: str = ""
    stuck: str = ""  # set if the job was not final at the timeout (then cancelled)
    failure_reason: str = ""
    wall_seconds: float = 0.0
    results_per_second: float = 0.0
    task_p50_ms: float = 0.0
    task_p99_ms: float = 0.0
    task_runs: int = 0
    task_failures: int = 0
    lines_emitted: int = 0
    lines_stored: int = 0
    lines_lost: int = 0
    lines_lost_at_sigkill: int = 0  # in flight in a process when it was SIGKILLed
    lines_lost_hostile: int = 0  # lines with hostile content (--hostile-lines) among the lost
    lines_duplicated: int = 0
    lines_other_jobs: int = 0  # emitted for another job (a task of an earlier run's job)
    # The first lost lines (unexpected losses first), see lost_lines.LostLine: id, pid,
    # emit time, job, whether and when its process was killed, its console text.
    lost_lines: list[dict] = field(default_factory=list)
    error_lines: dict[str, int] = field(default_factory=dict)
    most_error_lines_per_fault: int = 0
    fault_events: int = 0
    lock_wait_samples: int = 0
    lock_max_waiters: int = 0
    lock_waiter_seconds: float = 0.0
    images_total: int = 0
    images_processed: int = 0
    images_failed: int = 0
    detections_saved: int = 0
    detections_expected: int = 0  # the bundled model rerun by the load test itself
    counters_exact: bool = False
    counter_problems: list[str] = field(default_factory=list)
    phase_faults: list[dict] = field(default_factory=list)  # see runner.phase_fault_outcome
    phases_seen: list[str] = field(default_factory=list)

    @property
    def total_error_lines(self) -> int:
        return sum(self.error_lines.values())

    @property
    def lines_lost_otherwise(self) -> int:
        return self.lines_lost - self.lines_lost_at_sigkill


ROWS: list[tuple[str, str]] = [
    ("final status", "status"),
    ("wall time (s)", "wall_seconds"),
    ("results/s", "results_per_second"),
    ("task p50 (ms)", "task_p50_ms"),
    ("task p99 (ms)", "task_p99_ms"),
    ("task runs / failed", "task_runs"),
    ("log lines emitted", "lines_emitted"),
    ("log lines stored", "lines_stored"),
    ("log lines lost", "lines_lost"),
    ("  of which in flight at SIGKILL", "lines_lost_at_sigkill"),
    ("  of which hostile content", "lines_lost_hostile"),
    ("log lines duplicated", "lines_duplicated"),
    ("error lines (all)", "total_error_lines"),
    ("most error lines / fault", "most_error_lines_per_fault"),
    ("lock waits on job row (waiter-s)", "lock_waiter_seconds"),
    ("max waiters on job row", "lock_max_waiters"),
    ("images processed / failed / total", "images_processed"),
    ("detections saved / expected", "detections_saved"),
    ("counters exact", "counters_exact"),
    ("phases seen", "phases_seen"),
    ("phase faults (covered)", "phase_faults"),
]


def _cell(result: ModeOutcome, attr: str) -> str:
    if attr == "task_runs":
        return f"{result.task_runs} / {result.task_failures}"
    if attr == "images_processed":
        return f"{result.images_processed} / {result.images_failed} / {result.images_total}"
    if attr == "detections_saved":
        return f"{result.detections_saved} / {result.detections_expected}"
    if attr == "phases_seen":
        return ",".join(result.phases_seen)
    if attr == "phase_faults":
        return "\n".join(f"{f['fault']} {_coverage(f)}" for f in result.phase_faults)
    value = getattr(result, attr)
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    if isinstance(value, bool):
        return "yes" if value else "[red]NO[/red]"
    return str(value)


def _coverage(fault: dict) -> str:
    if fault["covered"]:
        return "yes"
    return "[red]NO[/red]" if fault.get("reached", True) else "not reached"


def render(results: list[ModeOutcome], console: Console) -> None:
    table = Table(title="ami loadtest: one job per log write mode")
    table.add_column("")
    for result in results:
        table.add_column(result.mode, justify="right")
    for label, attr in ROWS:
        table.add_row(label, *(_cell(r, attr) for r in results))
    kinds = sorted({kind for r in results for kind in r.error_lines})
    for kind in kinds:
        table.add_row(f"  errors: {kind}", *(str(r.error_lines.get(kind, 0)) for r in results))
    console.print(table)


def write_json(results: list[ModeOutcome], path: Path, meta: dict) -> None:
    payload = {
        "meta": meta,
        "modes": [
            asdict(r)
            | {
                "total_error_lines": r.total_error_lines,
                "lines_lost_otherwise": r.lines_lost_otherwise,
            }
            for r in results
        ],
    }
    path.write_text(json.dumps(payload, indent=2))
