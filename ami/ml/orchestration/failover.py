"""Riding out a NATS leader election: retry what it interrupts, for a bounded time.

On a cluster, losing the node that leads a stream (or the JetStream meta layer) leaves the
stream without a leader for a few seconds. Meanwhile publishes get no answer from the
stream (`NoStreamResponseError`), pulls a 503 status, acks `NoRespondersError` or a
timeout, and API requests a 503 error. Each NATS call of `ami.ml.orchestration.nats` runs
through `retrying`, which tries again with a growing pause until it succeeds or
`NATS_FAILOVER_TIMEOUT` has passed, and then raises the last error as before.

Only idempotent calls may be retried: publishes carry a message id the stream deduplicates,
acks and queue creation are idempotent. The same errors mean "the queue is gone" once a job
ended and its stream was deleted; `gone` tells the two apart, so that case fails at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from django.conf import settings
from nats.errors import (
    ConnectionReconnectingError,
    NoRespondersError,
    StaleConnectionError,
)
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import NoStreamResponseError, ServiceUnavailableError

logger = logging.getLogger(__name__)

T = TypeVar("T")
FIRST_DELAY = 0.1  # seconds before the first retry
MAX_DELAY = 1.0  # seconds: the longest pause between two tries


class NoLeader(NatsError):
    """A pull answered 503 (no consumer leader, or no consumer) or "Leadership Change"."""


ELECTION_ERRORS = (
    NoStreamResponseError,
    NoRespondersError,
    NatsTimeoutError,
    ServiceUnavailableError,
    ConnectionReconnectingError,
    StaleConnectionError,
    NoLeader,
)


async def retrying(
    attempt: Callable[[], Awaitable[T]],
    what: str,
    gone: Callable[[], Awaitable[bool]] | None = None,
) -> T:
    """Await `attempt()` until it does not fail with an election error, for a bounded time.

    `gone()`, asked after each such failure, says True when the stream or consumer no
    longer exists: the error is then raised at once (no election will bring it back).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.NATS_FAILOVER_TIMEOUT
    delay = FIRST_DELAY
    tries = 0
    while True:
        tries += 1
        try:
            result = await attempt()
        except ELECTION_ERRORS as exc:
            if loop.time() + delay > deadline or (gone is not None and await gone()):
                raise
            logger.debug("NATS %s failed (%r); retry %d in %.1f s", what, exc, tries, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY)
            continue
        if tries > 1:
            logger.info("NATS %s succeeded after %d tries", what, tries)
        return result


async def definitely_missing(probe: Awaitable[object], missing: type[Exception]) -> bool:
    """True if `probe` raises `missing` (a NotFoundError); False if it succeeds or fails
    any other way (during an election, not knowing is not "gone")."""
    try:
        await probe
    except missing:
        return True
    except (NatsError, TimeoutError):
        return False
    return False
