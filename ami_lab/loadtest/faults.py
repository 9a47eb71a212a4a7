"""Faults injected from outside the code under test, with the real mechanisms.

Each fault is started before (or during) a run and stopped after it, and records when it
struck (`events`), so a report can tie error lines to the fault that caused them.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psutil
import psycopg
from psycopg import sql

from ami_lab.servers import SERVERS

logger = logging.getLogger(__name__)


@dataclass
class FaultEvent:
    fault: str
    at: float  # time.time()
    detail: str = ""


class Fault:
    """Base class: hooks are no-ops; subclasses override what they need."""

    name = "fault"

    def __init__(self) -> None:
        self.events: list[FaultEvent] = []

    def before_workers(self) -> None:
        """Prepare before the worker processes start (e.g. database settings)."""

    def env(self) -> dict[str, str]:
        """Environment variables for every process of the system under test."""
        return {}

    def start(self, job_id: int) -> None:
        """Begin striking while the job runs."""

    def stop(self) -> None:
        """Stop striking and undo any lasting change."""

    def record(self, detail: str = "") -> None:
        self.events.append(FaultEvent(self.name, time.time(), detail))


class PeriodicFault(Fault):
    """A fault that strikes every `interval` seconds in a background thread."""

    def __init__(
        self,
        interval: float,
        first_after: float | None = None,
        wait_for_results_in: str | None = None,
    ) -> None:
        """Strike every `interval` s, first after `first_after` s; with a database URL in
        `wait_for_results_in`, only once the job has counted its first result."""
        super().__init__()
        self.interval = interval
        self.gate_url = wait_for_results_in
        self.first_after = interval if first_after is None else first_after
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.job_id: int | None = None

    def start(self, job_id: int) -> None:
        self.job_id = job_id
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=self.interval + 30)

    def _results_flowing(self) -> bool:
        if self.gate_url is None or self.job_id is None:
            return True
        with psycopg.connect(self.gate_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT processed + failed FROM jobs_jobstage WHERE job_id = %s AND key = %s",
                (self.job_id, "process"),
            ).fetchone()
        return bool(row and row[0])

    def _loop(self) -> None:
        delay = self.first_after
        while not self._stop.wait(delay):
            if not self._results_flowing():
                delay = 0.2  # strike once results flow, so the fault lands mid-work
                continue
            delay = self.interval
            try:
                self.strike()
            except (psycopg.Error, OSError, psutil.Error) as exc:
                logger.warning("%s failed to strike: %s", self.name, exc)

    def strike(self) -> None:
        raise NotImplementedError


class IdleInTransactionTimeout(Fault):
    """`idle_in_transaction_session_timeout` on the database, for every new connection."""

    name = "idle_in_transaction_timeout"

    def __init__(self, database_url: str, seconds: float) -> None:
        super().__init__()
        self.database_url = database_url
        self.milliseconds = int(seconds * 1000)

    def before_workers(self) -> None:
        self._alter(
            sql.SQL("SET idle_in_transaction_session_timeout = {}").format(
                sql.Literal(self.milliseconds)
            )
        )
        self.record(f"{self.milliseconds} ms")

    def stop(self) -> None:
        self._alter(sql.SQL("RESET idle_in_transaction_session_timeout"))

    def _alter(self, clause: sql.Composable) -> None:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            name = conn.info.dbname
            conn.execute(sql.SQL("ALTER DATABASE {} ").format(sql.Identifier(name)) + clause)


class SoftTimeLimit(Fault):
    """Celery's soft time limit on the tasks (SoftTimeLimitExceeded raised inside them).

    Set in every process, because Celery puts the *sender's* limits into each message
    (the web process sends the result tasks), and those override the worker's own.
    """

    name = "soft_time_limit"

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def env(self) -> dict[str, str]:
        return {"AMI_TASK_SOFT_TIME_LIMIT": str(self.seconds)}


class ConnectionTerminator(PeriodicFault):
    """`pg_terminate_backend` on the workers' connections (by application_name prefix)."""

    name = "terminate_connections"

    def __init__(self, database_url: str, interval: float, app_prefix: str) -> None:
        super().__init__(interval)
        self.database_url = database_url
        self.app_prefix = app_prefix

    def strike(self) -> None:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND application_name LIKE %s",
                (self.app_prefix + "%",),
            ).fetchall()
        self.record(f"{len(rows)} connections")


class JobLockHolder(PeriodicFault):
    """An outside session that holds the job row `FOR UPDATE` for `hold` seconds at a time."""

    name = "hold_job_lock"

    def __init__(self, database_url: str, hold: float, interval: float | None = None) -> None:
        super().__init__(
            interval if interval is not None else hold * 1.5,
            first_after=0.5,
            wait_for_results_in=database_url,
        )
        self.database_url = database_url
        self.hold = hold

    def strike(self) -> None:
        with holding_job_row(self.database_url, self.job_id):
            self.record(f"{self.hold} s")
            self._stop.wait(self.hold)


@contextmanager
def holding_job_row(database_url: str, job_id: int) -> Iterator[None]:
    """Hold the job row `FOR UPDATE` from an outside session for the block."""
    with psycopg.connect(database_url) as conn:
        # This session is the fault, not a victim of the idle-in-transaction fault.
        conn.execute("SET idle_in_transaction_session_timeout = 0")
        conn.commit()
        with conn.transaction():
            conn.execute("SELECT 1 FROM jobs_job WHERE id = %s FOR UPDATE", (job_id,))
            yield


class WorkerKiller(PeriodicFault):
    """SIGKILL of `count` Celery pool children, spread over the run, once results flow.

    Waiting for the first counted result makes each kill land mid-work, not while the
    pool is still starting (which would only stop the worker, a different fault).
    """

    name = "kill_workers"

    def __init__(
        self,
        parent_pid_getter: Callable[[], int],
        count: int,
        interval: float,
        database_url: str | None = None,
    ) -> None:
        super().__init__(interval, wait_for_results_in=database_url)
        self.parent_pid_getter = parent_pid_getter
        self.remaining = count

    def strike(self) -> None:
        if self.remaining <= 0:
            return
        children = psutil.Process(self.parent_pid_getter()).children()
        if not children:
            return
        victim = random.choice(children)
        os.kill(victim.pid, signal.SIGKILL)
        self.remaining -= 1
        self.record(f"pid {victim.pid}")


class NatsRestarter(PeriodicFault):
    """Restart the embedded NATS server on the same port (JetStream data kept on disk)."""

    name = "restart_nats"

    def __init__(self, interval: float, times: int = 1) -> None:
        super().__init__(interval)
        self.remaining = times

    def strike(self) -> None:
        if self.remaining <= 0:
            return
        SERVERS["nats"].restart()
        self.remaining -= 1
        self.record("restarted")


@dataclass
class FaultPlan:
    """The faults of one run, built from the command line options."""

    faults: list[Fault] = field(default_factory=list)

    def before_workers(self) -> None:
        for fault in self.faults:
            fault.before_workers()

    def env(self) -> dict[str, str]:
        return {key: value for fault in self.faults for key, value in fault.env().items()}

    def start(self, job_id: int) -> None:
        for fault in self.faults:
            fault.start(job_id)

    def stop(self) -> None:
        for fault in self.faults:
            fault.stop()

    @property
    def events(self) -> list[FaultEvent]:
        return sorted((e for f in self.faults for e in f.events), key=lambda e: e.at)
