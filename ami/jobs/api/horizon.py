"""The safe horizon: the largest JobLog id below which no line can still appear.

Ids come from a sequence when a row is inserted, not when it commits, so a transaction
that took id 10 may commit after one that took id 11. A reader that followed `id > cursor`
past 11 would never see 10. Readers therefore serve only ids up to a horizon H such that
every transaction that could still commit an id <= H has ended.

How H is found, without any column on JobLog:
1. Sample the sequence: `L = last_value`, then the database clock `t` (in that order), so
   every id <= L was drawn by a transaction that started before `t`.
2. Look at the other backends of this database (`pg_stat_activity`) that could still commit
   a row: those running a statement, or holding a transaction id. Let `m` be the earliest
   `xact_start` among them.
3. A sample with `t < m` is safe: every transaction that drew an id <= L started before
   `t`, so it is not among those still open, so it has committed or rolled back.
H is the largest safe sample. Samples are kept per process, so a busy database (always some
insert in flight) still yields a horizon a poll interval old.

Assumptions, documented in docs/api.md: the reader's role can see other sessions'
`xact_start` (same role, or `pg_read_all_stats`), and no transaction that writes JobLog stays
open longer than `LOG_HORIZON_MAX_TXN_SECONDS` (log writes are short autocommit statements);
older open transactions are ignored so one forgotten session cannot freeze every tail.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import connections

from ami.jobs.models import JobLog

SAMPLES_KEPT = 256  # per database; a poll every 250 ms keeps a minute of history
SETTLE_ATTEMPTS = 20  # a cold process samples again until a sample is safe...
SETTLE_PAUSE = 0.01  # seconds between them: log inserts in flight end within milliseconds

_SEQUENCE_SQL = "SELECT pg_get_serial_sequence(%s, 'id')"
_LAST_VALUE_SQL = "SELECT coalesce(pg_sequence_last_value(%s::regclass), 0)"
_CLOCK_SQL = "SELECT clock_timestamp(), pg_stat_clear_snapshot()"
_OPEN_WRITERS_SQL = """
SELECT min(xact_start) FROM pg_stat_activity
WHERE pid <> pg_backend_pid()
  AND datname = current_database()
  AND backend_type = 'client backend'
  AND xact_start IS NOT NULL
  AND (state IN ('active', 'fastpath function call')
       OR (backend_xid IS NOT NULL AND state <> 'idle in transaction (aborted)'))
  AND xact_start > statement_timestamp() - make_interval(secs => %s)
"""


@dataclass(frozen=True)
class Sample:
    taken_at: datetime  # database clock
    last_id: int


class HorizonTracker:
    """Process-wide samples of the JobLog sequence, one history per database."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._samples: dict[str, deque[Sample]] = {}
        self._sequences: dict[str, str] = {}
        # A horizon once safe stays safe: the best one so far, and when it was found.
        self._best: dict[str, tuple[float, int]] = {}

    def safe_horizon(
        self, using: str = "default", *, settle: bool = True, max_age: float = 0
    ) -> int:
        """Return the largest JobLog id that no still-open transaction can precede.

        `settle` samples again (briefly) until the newest sample is safe, for one-shot readers;
        a poller that comes back anyway passes False. `max_age` (seconds) lets callers share a
        recent answer, so many streams in one process cost one probe per interval.
        """
        key = self._key(using)
        if max_age > 0:
            with self._lock:
                found_at, horizon = self._best.get(key, (0.0, 0))
            if time.monotonic() - found_at < max_age:
                return horizon
        for attempt in range(SETTLE_ATTEMPTS if settle else 1):
            if attempt:
                time.sleep(SETTLE_PAUSE)
            horizon, newest_is_safe = self._probe(using, key)
            if newest_is_safe:
                break
        with self._lock:
            horizon = max(horizon, self._best.get(key, (0.0, 0))[1])
            self._best[key] = (time.monotonic(), horizon)
        return horizon

    @staticmethod
    def _key(using: str) -> str:
        settings_dict = connections[using].settings_dict
        return f"{settings_dict['HOST']}:{settings_dict['PORT']}/{settings_dict['NAME']}"

    def _probe(self, using: str, key: str) -> tuple[int, bool]:
        connection = connections[using]
        max_txn = settings.LOG_HORIZON_MAX_TXN_SECONDS
        with connection.cursor() as cursor:
            sequence = self._sequence(key, cursor)
            cursor.execute(_LAST_VALUE_SQL, [sequence])
            last_id = cursor.fetchone()[0]
            cursor.execute(_CLOCK_SQL)
            taken_at = cursor.fetchone()[0]
            cursor.execute(_OPEN_WRITERS_SQL, [max_txn])
            oldest_open = cursor.fetchone()[0]
        return self._record(key, Sample(taken_at, last_id), oldest_open)

    def sequence_position(self, using: str = "default") -> int:
        """The last id drawn from the JobLog sequence (committed or not)."""
        with connections[using].cursor() as cursor:
            cursor.execute(_LAST_VALUE_SQL, [self._sequence(self._key(using), cursor)])
            return cursor.fetchone()[0]

    def _sequence(self, key: str, cursor) -> str:
        if key not in self._sequences:
            cursor.execute(_SEQUENCE_SQL, [JobLog._meta.db_table])
            self._sequences[key] = cursor.fetchone()[0]
        return self._sequences[key]

    def _record(self, key: str, sample: Sample, oldest_open: datetime | None) -> tuple[int, bool]:
        """Add a sample; return the best safe horizon and whether `sample` itself is safe."""
        with self._lock:
            samples = self._samples.setdefault(key, deque(maxlen=SAMPLES_KEPT))
            samples.append(sample)
            safe = [s for s in samples if oldest_open is None or s.taken_at < oldest_open]
            if not safe:
                return 0, False
            best = max(safe, key=lambda s: (s.last_id, s.taken_at))
            # Samples older than the best safe one can never beat it again.
            while samples and samples[0] is not best and samples[0].taken_at < best.taken_at:
                samples.popleft()
            return best.last_id, best is sample


tracker = HorizonTracker()


def safe_horizon(using: str = "default", *, settle: bool = True, max_age: float = 0) -> int:
    """The largest JobLog id a cursor may move past without skipping a late commit."""
    return tracker.safe_horizon(using, settle=settle, max_age=max_age)


def sequence_position(using: str = "default") -> int:
    """The last JobLog id drawn so far; lines up to it end up committed or never exist."""
    return tracker.sequence_position(using)
