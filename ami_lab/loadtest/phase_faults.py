"""Faults aimed at one phase of the job: a window of trouble that covers that phase.

Start, collect and publish last milliseconds, far less than any poll, so a fault aimed at
them is armed *before* the phase and lasts a window of seconds (e.g. NATS is stopped while
the job is being started, so its publish meets the outage). A results fault opens once
results flow (the first result counted). A finish fault opens at the same moment and lasts
until `window` seconds after the watcher saw every image done, so the moment the last
result tries to finish the job falls inside it. After the run, `PhaseTimeline.covered`
tells whether each window really covered its phase.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil
import psycopg

from ami_lab.loadtest.faults import Fault, holding_job_row
from ami_lab.loadtest.phases import ORDER, PHASES, PhaseWatcher
from ami_lab.servers import SERVERS

logger = logging.getLogger(__name__)

KINDS = ("db_kill", "nats_down", "row_lock", "sigkill")
# Which kinds can touch each phase (row_lock matters only where the job row is locked).
APPLICABLE: dict[str, tuple[str, ...]] = {
    "start": ("db_kill", "row_lock", "sigkill"),
    "collect": ("db_kill", "sigkill"),
    "publish": ("nats_down", "db_kill", "sigkill"),
    "results": ("nats_down", "db_kill", "sigkill", "row_lock"),
    "finish": ("row_lock", "db_kill"),
}
DEFAULT_KIND = {
    "start": "row_lock",
    "collect": "db_kill",
    "publish": "nats_down",
    "results": "sigkill",
    "finish": "row_lock",
}
# When to open the window: "before" start_job is called (start, collect and publish are
# over within one poll of the watcher once the job is queued), or when the watcher sees
# the phase itself (results, finish).
ARM_POINT = {"start": "before", "collect": "before", "publish": "before"}
DEFAULT_WINDOW = 4.0  # seconds
# A NATS outage must outlast the workers' NATS request timeout (the load test sets it to
# `LoadConfig.nats_request_timeout`, 2 s; a call waits up to 3 of them) to fail a call.
WINDOW_BY_KIND = {"nats_down": 8.0}  # seconds
# Seconds between two pg_terminate_backend sweeps. An idle connection killed between
# sweeps fails its next query, so sweeps need not land inside a millisecond phase; much
# faster sweeps also kill the retry of every log write (no backend survives that).
DB_KILL_EVERY = 0.5
# Killed connections do not stop a phase, they delay it (the start task retries with
# backoff), often past the window: such a window stays open until the job is seen past its
# phase, at most this long after it would have closed.
DELAYING_KINDS = frozenset({"db_kill"})
MAX_HOLD_PAST_WINDOW = 30.0  # seconds
STALL_GIVE_UP = 15.0  # seconds without a new result before a finish window lets go
SIGKILL_EVERY = 1.5  # seconds between two SIGKILLs of a pool process
# More kills in a row make Celery give up on its pool ("Could not start worker
# processes"), a different fault from the one this one models.
MAX_SIGKILLS = 2
ARM_TIMEOUT = 600.0  # seconds to wait for a phase before giving up on its fault


@dataclass(frozen=True)
class PhaseFaultSpec:
    phase: str
    kind: str
    window: float = DEFAULT_WINDOW  # seconds

    def label(self) -> str:
        return f"{self.phase}:{self.kind}:{self.window:g}s"


def default_specs(phases: list[str], kind: str | None = None) -> list[PhaseFaultSpec]:
    """One fault per phase: `kind` where it applies, else the phase's default kind."""
    specs = []
    for phase in phases:
        chosen = kind if kind in APPLICABLE[phase] else DEFAULT_KIND[phase]
        specs.append(PhaseFaultSpec(phase, chosen, WINDOW_BY_KIND.get(chosen, DEFAULT_WINDOW)))
    return without_conflicts(specs)


def without_conflicts(specs: list[PhaseFaultSpec]) -> list[PhaseFaultSpec]:
    """Results and finish faults open together: two row locks would queue behind each
    other (one then misses its phase), so the finish fault kills connections instead."""
    kinds = {spec.phase: spec.kind for spec in specs}
    if kinds.get("results") == kinds.get("finish") == "row_lock":
        return [
            PhaseFaultSpec(s.phase, "db_kill", s.window) if s.phase == "finish" else s
            for s in specs
        ]
    return specs


def random_specs(phases: list[str], seed: int) -> list[PhaseFaultSpec]:
    """One fault per phase, kind and window drawn from `seed` (the same seed, the same run)."""
    rng = random.Random(seed)
    specs = []
    for phase in phases:
        kind = rng.choice(APPLICABLE[phase])
        base = WINDOW_BY_KIND.get(kind, DEFAULT_WINDOW)
        specs.append(PhaseFaultSpec(phase, kind, round(rng.uniform(0.5, 1.5) * base, 1)))
    return without_conflicts(specs)


def parse_phases(text: str) -> list[str]:
    """Phases from a comma-separated list ("all" for every phase), in job order."""
    names = {p.strip() for p in text.split(",") if p.strip()}
    if "all" in names:
        return list(PHASES)
    unknown = sorted(names - set(PHASES))
    if unknown:
        raise ValueError(f"unknown phase {', '.join(unknown)}; choose from {', '.join(PHASES)}")
    return [p for p in PHASES if p in names]


@dataclass(frozen=True)
class Targets:
    """What the faults strike: the database, the Celery workers' pool processes."""

    database_url: str
    worker_connections: str  # application_name prefix of the workers' connections
    jobs_worker_pid: Callable[[], int]
    results_worker_pid: Callable[[], int]


class PhaseFault(Fault):
    """One window fault aimed at one phase; runs in its own thread."""

    def __init__(self, spec: PhaseFaultSpec, targets: Targets) -> None:
        super().__init__()
        self.spec = spec
        self.targets = targets
        self.name = f"phase_{spec.phase}_{spec.kind}"
        self.window: tuple[float, float] | None = None  # time.time() of open and close
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.job_id: int | None = None
        self.watcher: PhaseWatcher | None = None
        # The fault of the phase before, when both are armed before the job starts: this
        # window then lasts until `window` s after that one closed, so it covers its phase
        # even when the earlier fault delayed it (a held row delays collect, and so on).
        self.after: PhaseFault | None = None
        self._in_place = threading.Event()

    @property
    def arm_point(self) -> str:
        return ARM_POINT.get(self.spec.phase, "phase")

    def open(self, job_id: int, watcher: PhaseWatcher) -> None:
        """Start the window now if armed before the job, else once `watcher` sees the phase."""
        self.job_id = job_id
        self.watcher = watcher
        at_once = self.arm_point == "before"
        target = self._strike_window if at_once else lambda: self._armed(watcher)
        self._thread = threading.Thread(target=target, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=self.spec.window + 30)

    def wait_opened(self, timeout: float = 30.0) -> None:
        """Block until the fault is in place (for faults armed before the job starts)."""
        self._in_place.wait(timeout)

    def in_place(self) -> None:
        """Called by a strike once its trouble is real (NATS stopped, row locked...)."""
        if not self._in_place.is_set():
            self.window = (time.time(), time.time() + self.spec.window)  # closed later
            self._in_place.set()

    def _armed(self, watcher: PhaseWatcher) -> None:
        if self.spec.phase in ("results", "finish"):
            arrived = watcher.results_flowing
        else:
            arrived = lambda: watcher.timeline.reached(self.spec.phase)  # noqa: E731
        reached = watcher.wait_until(lambda: self._stop.is_set() or arrived(), ARM_TIMEOUT)
        if reached and not self._stop.is_set():
            self._strike_window()

    def _strike_window(self) -> None:
        try:
            STRIKES[self.spec.kind](self)
        except (psycopg.Error, OSError, psutil.Error) as exc:
            logger.warning("%s failed to strike: %s", self.name, exc)
        finally:
            self._in_place.set()  # never leave wait_opened hanging
        if self.window is not None:
            self.window = (self.window[0], time.time())
            self.record(f"window {self.window[1] - self.window[0]:.1f} s")

    def closes_at(self) -> float | None:
        """time.time() at which the window closes; None while that is not known yet."""
        if self.window is None:
            return None
        if self.spec.phase == "finish" and self.watcher is not None:
            firsts = self.watcher.timeline.first_seen()
            started = firsts.get("finish") or firsts.get("final")
            if started is not None:
                return started + self.spec.window
            # A job whose every log line waits on the held row (the legacy modes) cannot
            # finish under it: once results stall, the window gives up, as a real lock
            # holder would.
            stalled_for = time.time() - self.watcher.progressed_at
            return time.time() if stalled_for >= STALL_GIVE_UP else None
        own = self.window[0] + self.spec.window
        if self.after is None:
            return own
        if self.after.is_open():
            return None
        before = self.after.window[1] if self.after.window else own
        return max(own, before + self.spec.window)

    def is_open(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def active(self) -> bool:
        """Still inside the window?"""
        if self._stop.is_set():
            return False
        closes = self.closes_at()
        if closes is None or time.time() < closes:
            return True
        return (
            self.spec.kind in DELAYING_KINDS
            and not self._phase_passed()
            and time.time() < closes + MAX_HOLD_PAST_WINDOW
        )

    def _phase_passed(self) -> bool:
        timeline = self.watcher.timeline if self.watcher else None
        return timeline is None or any(
            ORDER[seen] > ORDER[self.spec.phase] for _, seen in timeline.samples
        )

    def hold(self, every: float = 0.05) -> None:
        """Wait until the window closes (or the fault is stopped)."""
        while self.active():
            self._stop.wait(every)

    def _pool_owner(self) -> int:
        if self.spec.phase in ("start", "collect", "publish"):
            return self.targets.jobs_worker_pid()
        return self.targets.results_worker_pid()


def _db_kill(fault: PhaseFault) -> None:
    with psycopg.connect(fault.targets.database_url, autocommit=True) as conn:
        while fault.active():
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND application_name LIKE %s",
                (fault.targets.worker_connections + "%",),
            )
            fault.in_place()
            fault._stop.wait(DB_KILL_EVERY)


def _nats_down(fault: PhaseFault) -> None:
    server = SERVERS["nats"]
    state = server.read_state()
    if state is None:
        raise OSError("nats_down needs the embedded NATS server")
    server.stop()
    fault.in_place()
    try:
        fault.hold()
    finally:
        server.start(port=state.port)  # same port and data: the clients reconnect


def _row_lock(fault: PhaseFault) -> None:
    with holding_job_row(fault.targets.database_url, fault.job_id):
        fault.in_place()
        fault.hold()


def _sigkill(fault: PhaseFault) -> None:
    fault.in_place()
    kills = 0
    while fault.active() and kills < MAX_SIGKILLS:
        children = psutil.Process(fault._pool_owner()).children()
        if children:
            victim = random.choice(children).pid
            os.kill(victim, signal.SIGKILL)
            kills += 1
            fault.record(f"pid {victim}")
        fault._stop.wait(SIGKILL_EVERY)
    fault.hold()  # the window lasts its length


STRIKES: dict[str, Callable[[PhaseFault], None]] = {
    "db_kill": _db_kill,
    "nats_down": _nats_down,
    "row_lock": _row_lock,
    "sigkill": _sigkill,
}
