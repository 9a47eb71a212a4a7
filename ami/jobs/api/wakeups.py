"""Wakeups for live log streams: PostgreSQL NOTIFY instead of a timer per stream.

Writers notify (triggers of migration 0007): one `LOG_CHANNEL` notification per INSERT or
COPY statement on jobs_joblog, naming the jobs it wrote lines for (`*` when the list would
not fit a payload), and one `STATUS_CHANNEL` notification when a job's status changes.
PostgreSQL delivers a notification only once its transaction has committed, so a woken
stream finds the lines committed.

Readers: one listener per web process (`Listener`, started lazily by the first stream on the
running event loop) owns one autocommit connection that LISTENs on both channels and wakes the
streams of the named jobs. While it is not connected (starting, or reconnecting after an
error) streams poll at `API_SSE_POLL_SECONDS` as before; once connected, at
`API_SSE_FALLBACK_POLL_SECONDS` only, as a safety net.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from django.conf import settings

LOG_CHANNEL = "ami_joblog_lines"  # migration 0007 hard-codes the same names
STATUS_CHANNEL = "ami_job_status"
EVERYONE = "*"  # payload meaning "wake every stream"
LISTENER_APP_SUFFIX = "-wakeups"  # application_name of the listener's connection
BACKOFF_FIRST, BACKOFF_MAX = 0.2, 5.0  # seconds between reconnect attempts
# Django-only OPTIONS keys that psycopg.connect does not accept.
_DJANGO_ONLY_OPTIONS = {"pool", "server_side_binding", "isolation_level", "assume_role"}

logger = logging.getLogger(__name__)


class Subscription:
    """One stream's wakeup: set by the listener, taken (and cleared) by the stream."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self._event = asyncio.Event()
        self.woken_at: float | None = None  # monotonic time of the latest wakeup not taken
        self.status_changed = False

    def wake(self, status: bool = False) -> None:
        self.woken_at = time.monotonic()
        self.status_changed = self.status_changed or status
        self._event.set()

    def take(self) -> tuple[float | None, bool]:
        """(when last woken, whether the job's status changed) since the last take; clears.

        A stream takes before its query, so a wakeup that arrives during the query is kept
        for the next wait.
        """
        taken = self.woken_at, self.status_changed
        self.woken_at, self.status_changed = None, False
        self._event.clear()
        return taken

    async def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for a wakeup; True if woken."""
        if self._event.is_set():
            return True
        try:
            async with asyncio.timeout(max(timeout, 0.0)):
                await self._event.wait()
        except TimeoutError:
            return False
        return True


class Wakeups:
    """The registry job id -> subscriptions, and the dispatch of notification payloads."""

    def __init__(self) -> None:
        self._by_job: dict[int, set[Subscription]] = {}
        # Streams whose lines wait above the log horizon: the writer holding H back may log
        # for another job, so any commit of lines may be the one that lets theirs through.
        self._held: set[Subscription] = set()

    @contextmanager
    def subscribe(self, job_id: int) -> Iterator[Subscription]:
        subscription = Subscription(job_id)
        self._by_job.setdefault(job_id, set()).add(subscription)
        try:
            yield subscription
        finally:
            self._held.discard(subscription)
            subscribers = self._by_job.get(job_id, set())
            subscribers.discard(subscription)
            if not subscribers:
                self._by_job.pop(job_id, None)

    def set_held(self, subscription: Subscription, held: bool) -> None:
        """Mark a stream as waiting for lines above the horizon (woken by any job's lines)."""
        if held:
            self._held.add(subscription)
        else:
            self._held.discard(subscription)

    def dispatch(self, channel: str, payload: str) -> None:
        """Wake the subscriptions of the jobs named in `payload` (`*`: all of them)."""
        status = channel == STATUS_CHANNEL
        if payload.strip() == EVERYONE:
            self.wake_all(status)
            return
        if not status:
            for subscription in list(self._held):
                subscription.wake()
        for part in payload.split(","):
            try:
                job_id = int(part)
            except ValueError:
                logger.warning("ignoring notification %r on %s", payload, channel)
                return
            for subscription in list(self._by_job.get(job_id, ())):
                subscription.wake(status)

    def wake_all(self, status: bool = False) -> None:
        for subscribers in list(self._by_job.values()):
            for subscription in list(subscribers):
                subscription.wake(status)

    def count(self) -> int:
        return sum(len(subscribers) for subscribers in self._by_job.values())


def connection_kwargs(alias: str = "default") -> dict[str, Any]:
    """psycopg connection parameters from Django's DATABASES[alias]."""
    settings_dict = settings.DATABASES[alias]
    options = {
        key: value
        for key, value in settings_dict.get("OPTIONS", {}).items()
        if key not in _DJANGO_ONLY_OPTIONS
    }
    application_name = options.get("application_name") or "ami"
    options["application_name"] = f"{application_name}{LISTENER_APP_SUFFIX}"
    params = {
        "dbname": settings_dict["NAME"],
        "user": settings_dict.get("USER") or None,
        "password": settings_dict.get("PASSWORD") or None,
        "host": settings_dict.get("HOST") or None,
        "port": settings_dict.get("PORT") or None,
    }
    return {**{k: v for k, v in params.items() if v is not None}, **options}


class Listener:
    """The process's one LISTEN connection, run as a task on the event loop of the streams."""

    def __init__(self, wakeups: Wakeups) -> None:
        self.wakeups = wakeups
        self.connected = False
        self.backend_pid: int | None = None
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def ensure_started(self) -> None:
        """Start the listener on the running loop unless it already runs there (or push is off)."""
        if not settings.API_SSE_PUSH:
            return
        loop = asyncio.get_running_loop()
        if self._task is not None and self._loop is loop and not self._task.done():
            return
        self.connected = False
        self._loop = loop
        self._task = loop.create_task(self._run(), name="ami-log-wakeups")

    def poll_interval(self) -> float:
        """How long a stream waits without a wakeup before it looks anyway."""
        if self.connected:
            return settings.API_SSE_FALLBACK_POLL_SECONDS
        return settings.API_SSE_POLL_SECONDS

    async def _run(self) -> None:
        backoff = BACKOFF_FIRST
        try:
            while True:
                try:
                    await self._listen()
                except (psycopg.Error, OSError) as error:
                    logger.warning("log wakeup listener lost its connection (%s); polling", error)
                if self.connected:
                    backoff = BACKOFF_FIRST  # it had worked: retry soon
                self._set_connected(False)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
        finally:
            # Cancelled with its loop, or a bug: streams must not wait on a dead listener.
            # (The next stream to subscribe starts a new one.)
            self._set_connected(False)

    async def _listen(self) -> None:
        kwargs = connection_kwargs()
        async with await psycopg.AsyncConnection.connect(autocommit=True, **kwargs) as conn:
            await conn.execute(f"LISTEN {LOG_CHANNEL}")
            await conn.execute(f"LISTEN {STATUS_CHANNEL}")
            self.backend_pid = conn.info.backend_pid
            # Lines and status changes may have committed while nobody listened: everyone looks.
            self._set_connected(True)
            async for notify in conn.notifies():
                self.wakeups.dispatch(notify.channel, notify.payload)

    def _set_connected(self, connected: bool) -> None:
        changed = connected != self.connected
        self.connected = connected
        if connected or changed:
            # Waiting streams re-evaluate their timeout (and look once after a reconnect).
            self.wakeups.wake_all(status=True)


registry = Wakeups()
listener = Listener(registry)


@contextmanager
def subscribe(job_id: int) -> Iterator[Subscription]:
    """Subscribe a stream to its job's wakeups, starting the listener if needed."""
    listener.ensure_started()
    with registry.subscribe(job_id) as subscription:
        yield subscription
