"""The unit every backend writes: one job log line, already sanitised.

Each row gets, once, when it is made: its emit time (written as `created_at` by every
backend, so a line queued for a while keeps the time it was logged) and its write key (a
retried write stores nothing twice: `JobLog.key` is unique).
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def new_key() -> int:
    """A time-ordered UUID (RFC 9562 version 7) as its 128-bit integer: 48-bit unix
    milliseconds, then random bits.

    Keys made close in time sort close together, so the unique btree on `key` takes inserts
    at its right edge instead of on random pages. The random bits come from `random`, not
    `os.urandom`: a key needs uniqueness, not secrecy, and the getrandom() system call
    releases the GIL on every line. `random` is reseeded in a forked child. An int, not a
    `uuid.UUID`: this runs on every emit, and the writers send it as text.
    """
    value = (time.time_ns() // 1_000_000) << 80 | random.getrandbits(80)
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    return (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant


def uuid7() -> uuid.UUID:
    """`new_key()` as a UUID."""
    return uuid.UUID(int=new_key())


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class LogRow:
    job_id: int
    level: int
    message: str
    context: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=utc_now, compare=False)
    key: int = field(default_factory=new_key, compare=False)  # a UUIDv7 as its integer

    @property
    def key_text(self) -> str:
        """The key as PostgreSQL's uuid input reads it (32 hex digits)."""
        return format(self.key, "032x")

    @property
    def level_name(self) -> str:
        return logging.getLevelName(self.level)
