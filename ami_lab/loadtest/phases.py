"""Which phase a running job is in, read from real state, and when each phase was seen.

Phases, in order: start (CREATED/PENDING, or STARTED before collecting), collect (collect
stage STARTED), publish (collected, not every task in the job's NATS stream yet), results
(every task published, not every image done), finish (every image done, job not final yet),
final. Nothing in the product is instrumented: the watcher polls the job's rows in
PostgreSQL and its stream in NATS, so a phase shorter than the poll interval may go unseen;
`PhaseTimeline.span` gives the interval in which such a phase must have happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import nats
import psycopg

from ami.ml.orchestration.nats import server_urls, stream_name

logger = logging.getLogger(__name__)

PHASES = ("start", "collect", "publish", "results", "finish")
FINAL = "final"
ORDER = {name: index for index, name in enumerate((*PHASES, FINAL))}
# Spelled out (the watcher reads raw rows); tests check it equals ami.jobs.states.FINAL_STATES.
FINAL_STATUSES = frozenset({"SUCCESS", "COMPLETED_WITH_ERRORS", "FAILURE", "REVOKED"})
WATCH_INTERVAL = 0.05  # seconds between two polls
NATS_QUERY_TIMEOUT = 0.5  # seconds
NATS_RECONNECT_EVERY = 0.5  # seconds between two connection attempts while NATS is down


@dataclass(frozen=True)
class JobState:
    status: str
    collect_status: str
    total: int
    done: int
    published: int | None  # messages ever stored in the job's stream; None: stream unknown


def classify(state: JobState) -> str:
    """The phase a job in `state` is in."""
    if state.status in FINAL_STATUSES:
        return FINAL
    if state.status in ("CREATED", "PENDING") or state.collect_status == "PENDING":
        return "start"
    if state.collect_status == "STARTED":
        return "collect"
    if state.total and state.done >= state.total:
        return "finish"
    if state.done == 0 and (state.published is None or state.published < state.total):
        return "publish"
    return "results"


@dataclass
class PhaseTimeline:
    """Every (time, phase) sample the watcher took, in order."""

    samples: list[tuple[float, str]] = field(default_factory=list)

    def add(self, at: float, phase: str) -> None:
        self.samples.append((at, phase))

    def current(self) -> str | None:
        return self.samples[-1][1] if self.samples else None

    def reached(self, phase: str) -> bool:
        """True once the job was seen in `phase` or any later one."""
        return any(ORDER[seen] >= ORDER[phase] for _, seen in self.samples)

    def seen_during(self, phase: str, start: float, end: float) -> bool:
        return any(p == phase and start <= at <= end for at, p in self.samples)

    def span(self, phase: str) -> tuple[float, float] | None:
        """(last sample before `phase`, first sample after it): the phase lies inside.

        None if the job never got past `phase` or was never seen before it.
        """
        before = [at for at, p in self.samples if ORDER[p] < ORDER[phase]]
        after = [at for at, p in self.samples if ORDER[p] > ORDER[phase]]
        if not after:
            return None
        start = max((at for at in before if at < after[0]), default=None)
        return None if start is None else (start, after[0])

    def covered(self, phase: str, start: float, end: float) -> bool:
        """Did a fault active over [start, end] strike while the job was in `phase`?

        Yes if the job was seen in that phase meanwhile, or if the window spans the whole
        interval in which the (too short to see) phase must have happened.
        """
        if self.seen_during(phase, start, end):
            return True
        span = self.span(phase)
        return span is not None and start <= span[0] and span[1] <= end

    def first_seen(self) -> dict[str, float]:
        firsts: dict[str, float] = {}
        for at, phase in self.samples:
            firsts.setdefault(phase, at)
        return firsts


class PhaseWatcher:
    """Poll one job's phase every `WATCH_INTERVAL` in a background thread."""

    def __init__(self, database_url: str, nats_url: str, job_id: int) -> None:
        self.database_url = database_url
        self.nats_url = nats_url
        self.job_id = job_id
        self.timeline = PhaseTimeline()
        self.state: JobState | None = None  # the latest poll
        self.progressed_at = time.time()  # when the count of images done last changed
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="phase-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def wait_for(self, phase: str, timeout: float) -> bool:
        """Block until the job reached `phase` (or a later one); False on timeout or stop."""
        return self.wait_until(lambda: self.timeline.reached(phase), timeout)

    def results_flowing(self) -> bool:
        """True once the job counted a result (or got past the results phase)."""
        return self.timeline.reached("finish") or bool(self.state and self.state.done)

    def wait_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Block until `condition()` holds after a poll; False on timeout or stop."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stop.is_set():
                    return False
                self._changed.wait(min(remaining, 0.5))
        return True

    def wait_first_sample(self, timeout: float = 30.0) -> bool:
        """Block until the watcher has sampled the job once (it is then really watching)."""
        return self.wait_until(lambda: bool(self.timeline.samples), timeout)

    def _run(self) -> None:
        asyncio.run(self._loop())

    async def _loop(self) -> None:
        self._client: nats.NATS | None = None
        self._next_connect = 0.0
        try:
            with psycopg.connect(self.database_url, autocommit=True) as conn:
                while True:  # one more sample after stop(): the job's state at the end
                    stopping = self._stop.is_set()
                    state = await self._read(conn)
                    with self._changed:
                        if self.state is None or state.done != self.state.done:
                            self.progressed_at = time.time()
                        self.state = state
                        self.timeline.add(time.time(), classify(state))
                        self._changed.notify_all()
                    if stopping:
                        break
                    await asyncio.sleep(WATCH_INTERVAL)
        finally:
            await self._drop_nats()

    async def _read(self, conn: psycopg.Connection) -> JobState:
        status, collect_status, total, done = conn.execute(
            "SELECT j.status, c.status, p.total, p.processed + p.failed"
            " FROM jobs_job j JOIN jobs_jobstage c ON c.job_id = j.id AND c.key = 'collect'"
            " JOIN jobs_jobstage p ON p.job_id = j.id AND p.key = 'process' WHERE j.id = %s",
            (self.job_id,),
        ).fetchone()
        published = await self._published() if collect_status == "SUCCESS" else None
        return JobState(status, collect_status, total, done, published)

    async def _published(self) -> int | None:
        """Messages ever stored in the job's stream; None while unknown (NATS down)."""
        client = await self._nats()
        if client is None:
            return None
        try:
            info = await client.jetstream(timeout=NATS_QUERY_TIMEOUT).stream_info(
                stream_name(self.job_id)
            )
        except Exception:  # no stream yet, or NATS went down: unknown this time
            if not client.is_connected:
                await self._drop_nats()
            return None
        return info.state.last_seq

    async def _nats(self) -> nats.NATS | None:
        """A connected client, or None; never blocks a poll for long (NATS may be down)."""
        if self._client is not None and self._client.is_connected:
            return self._client
        await self._drop_nats()
        if time.monotonic() < self._next_connect:
            return None
        self._next_connect = time.monotonic() + NATS_RECONNECT_EVERY

        async def ignore(_: Exception) -> None:
            return None

        try:
            # nats-py retries an initial connect to a stopped server for minutes (its
            # reconnect settings apply to it): bound the whole attempt instead.
            self._client = await asyncio.wait_for(
                nats.connect(
                    server_urls(self.nats_url),
                    allow_reconnect=False,
                    connect_timeout=NATS_QUERY_TIMEOUT,
                    error_cb=ignore,
                ),
                timeout=NATS_QUERY_TIMEOUT,
            )
        except Exception:  # down: the database-visible phases are still seen
            return None
        return self._client

    async def _drop_nats(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.close()
            self._client = None
