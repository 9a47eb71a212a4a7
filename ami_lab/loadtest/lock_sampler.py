"""Samples lock waits on the job row from pg_locks / pg_stat_activity during a run."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import psycopg

SAMPLE_INTERVAL = 0.1  # seconds

# Sessions waiting for a lock while their query touches the jobs table (row locks show
# up as waits on a tuple or on the holder's transaction id, not on the relation).
WAITERS_SQL = """
SELECT count(*)
FROM pg_stat_activity a
WHERE a.datname = current_database()
  AND a.wait_event_type = 'Lock'
  AND (a.query LIKE '%%"jobs_job"%%' OR EXISTS (
        SELECT 1 FROM pg_locks l
        WHERE l.pid = a.pid AND NOT l.granted AND l.relation = 'jobs_job'::regclass))
"""


@dataclass
class LockWaitStats:
    samples: int = 0
    samples_waiting: int = 0
    max_waiters: int = 0
    waiter_seconds: float = 0.0  # sum over samples of waiters x interval


class LockSampler:
    def __init__(self, database_url: str, interval: float = SAMPLE_INTERVAL) -> None:
        self.database_url = database_url
        self.interval = interval
        self.stats = LockWaitStats()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lock-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> LockWaitStats:
        self._stop.set()
        self._thread.join(timeout=10)
        return self.stats

    def _run(self) -> None:
        with psycopg.connect(
            self.database_url, autocommit=True, application_name="loadtest-sampler"
        ) as conn:
            while not self._stop.wait(self.interval):
                waiters = conn.execute(WAITERS_SQL).fetchone()[0]
                self.stats.samples += 1
                if waiters:
                    self.stats.samples_waiting += 1
                    self.stats.max_waiters = max(self.stats.max_waiters, waiters)
                    self.stats.waiter_seconds += waiters * self.interval
