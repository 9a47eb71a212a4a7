"""The unit every backend writes: one job log line, already sanitised.

Each row gets, once, when it is made: its emit time (written as `created_at` by every
backend, so a line queued for a while keeps the time it was logged) and its write key (a
retried write stores nothing twice: `JobLog.key` is unique).
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 version 7): 48-bit unix milliseconds, then random bits.

    Keys made close in time sort close together, so the unique btree on `key` takes inserts
    at its right edge instead of on random pages.
    """
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10))
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return uuid.UUID(int=value)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class LogRow:
    job_id: int
    level: int
    message: str
    context: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=utc_now, compare=False)
    key: uuid.UUID = field(default_factory=uuid7, compare=False)

    @property
    def level_name(self) -> str:
        return logging.getLevelName(self.level)
