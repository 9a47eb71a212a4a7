"""Lock waits seen from outside: poll `pg_stat_activity` and `pg_locks` every few ms.

A backend waiting for a row lock shows `wait_event_type = 'Lock'`. Which row's table it
waits for is in `pg_locks`: the first waiter for a row holds the row's `tuple` lock
(granted) while it waits for the holder's transaction id; later waiters wait for that tuple
lock (not granted); a wait for a whole table is a `relation` lock not granted. Those
relations name the waited-for table. When none is found (a wait on a transaction id alone),
the statement's text names the tables it touches, and is used instead.

One waiting episode is one statement of one backend, `(pid, query_start)`; its wait is
`clock_timestamp() - query_start` at the last sample that saw it waiting (so at most one
sampling interval short of the real wait, and including whatever the statement did before
it started waiting).
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime

import psycopg

JOB_TABLES = frozenset({"jobs_job", "jobs_jobstage"})
_JOB_TABLE_IN_QUERY = re.compile(r"\bjobs_job(stage)?\b")

_SAMPLE_SQL = """
SELECT a.pid, a.query_start,
       extract(epoch FROM clock_timestamp() - a.query_start) * 1000 AS waited_ms,
       a.query,
       coalesce(array_agg(DISTINCT l.relation::regclass::text)
                FILTER (WHERE l.relation IS NOT NULL), '{}') AS relations
  FROM pg_stat_activity AS a
  LEFT JOIN pg_locks AS l
         ON l.pid = a.pid AND l.relation IS NOT NULL
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND ((l.locktype = 'tuple') OR (l.locktype = 'relation' AND NOT l.granted))
 WHERE a.wait_event_type = 'Lock' AND a.datname = current_database()
   AND a.pid <> pg_backend_pid() AND a.query_start IS NOT NULL
 GROUP BY a.pid, a.query_start, a.query
"""


@dataclass
class Episode:
    """One statement of one backend seen waiting for a lock."""

    pid: int
    query_start: datetime
    query: str
    waited_ms: float = 0.0
    relations: set[str] = field(default_factory=set)
    samples: int = 0

    @property
    def on_job_rows(self) -> bool:
        """Waiting for a `jobs_job` or `jobs_jobstage` row (or table)."""
        if self.relations:
            return bool(self.relations & JOB_TABLES)
        return bool(_JOB_TABLE_IN_QUERY.search(self.query))


class LockSampler:
    """A thread that samples lock waits on its own connection until `stop()`."""

    def __init__(self, conninfo: dict, interval: float = 0.003) -> None:
        self.conninfo = conninfo
        self.interval = interval
        self.samples = 0
        self._episodes: dict[tuple[int, datetime], Episode] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="lock-sampler", daemon=True)

    def __enter__(self) -> LockSampler:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start sampling; returns once the sampler's connection is open."""
        self._thread.start()
        self._ready.wait(timeout=30)
        if self._error:
            raise self._error

    def stop(self) -> list[Episode]:
        """Stop sampling (the thread ends before this returns); return every episode."""
        self._stop.set()
        self._thread.join()
        if self._error:
            raise RuntimeError("the lock sampler failed") from self._error
        return self.episodes()

    def episodes(self) -> list[Episode]:
        """The episodes seen so far (a copy; callable while sampling)."""
        with self._lock:
            return [
                Episode(e.pid, e.query_start, e.query, e.waited_ms, set(e.relations), e.samples)
                for e in self._episodes.values()
            ]

    def _run(self) -> None:
        try:
            with psycopg.connect(**self.conninfo, autocommit=True) as conn:
                self._ready.set()
                while not self._stop.is_set():
                    self._sample(conn.execute(_SAMPLE_SQL).fetchall())
                    self._stop.wait(self.interval)
        except BaseException as exc:  # reported by start() or stop()
            self._error = exc
        finally:
            self._ready.set()

    def _sample(self, rows: list[tuple]) -> None:
        self.samples += 1
        with self._lock:
            for pid, query_start, waited_ms, query, relations in rows:
                episode = self._episodes.setdefault(
                    (pid, query_start), Episode(pid, query_start, query)
                )
                episode.waited_ms = max(episode.waited_ms, float(waited_ms))
                episode.relations.update(relations)
                episode.samples += 1


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


def wait_summary(episodes: list[Episode]) -> dict:
    """Episodes and p50/p99/max wait (ms) of some episodes."""
    waits = [e.waited_ms for e in episodes]
    return {
        "episodes": len(waits),
        "p50_ms": round(percentile(waits, 0.50), 1),
        "p99_ms": round(percentile(waits, 0.99), 1),
        "max_ms": round(max(waits, default=0.0), 1),
    }


def django_conninfo(alias: str = "default") -> dict:
    """psycopg.connect() keywords for a Django database (the sampler's own connection)."""
    from django.db import connections

    settings = connections[alias].settings_dict
    params = {
        "dbname": settings["NAME"],
        "user": settings["USER"],
        "password": settings["PASSWORD"],
        "host": settings["HOST"],
        "port": settings["PORT"],
    }
    return {key: value for key, value in params.items() if value not in ("", None)}
