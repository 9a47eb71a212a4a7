"""The unit every backend writes: one job log line, already sanitised."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class LogRow:
    job_id: int
    level: int
    message: str
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def level_name(self) -> str:
        return logging.getLevelName(self.level)
