"""The legacy JSON log column's format, in one place: how an entry is written, how it is read
back (for the backfill), and how many entries each array keeps.

Layout kept for old readers: `{"stdout": [...], "stderr": [...]}`, newest first, each array
capped at `MAX_LINES`; a stdout entry is "[YYYY-mm-dd HH:MM:SS] LEVEL message" (UTC), a stderr
entry (ERROR and above) the bare message.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime

BACKFILL_SOURCE = "legacy_json"  # context["source"] of every backfilled row
MAX_LINES = 1000  # entries per array: what old readers of the column (and `job.logs`) got
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
_ENTRY = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\] ([A-Z]+) (.*)$", re.DOTALL)


def format_entry(created_at: datetime, level: int, message: str) -> str:
    """One stdout entry: "[2024-01-31 12:00:00] ERROR message", the time in UTC."""
    stamp = created_at.astimezone(UTC).strftime(TIMESTAMP_FORMAT)
    return f"[{stamp}] {logging.getLevelName(level)} {message}"


@dataclass(frozen=True)
class LegacyLine:
    level: int
    message: str
    created_at: datetime | None  # None when the entry carries no readable timestamp
    stream: str  # "stdout" or "stderr"


def parse_stdout_entry(entry: str) -> LegacyLine:
    """Parse "[2024-05-01 12:00:00] INFO message"; anything else is an INFO message."""
    match = _ENTRY.match(entry)
    if match is None:
        return LegacyLine(logging.INFO, entry, None, "stdout")
    stamp, level_name, message = match.groups()
    level = logging.getLevelName(level_name)
    created_at = datetime.strptime(stamp, TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    return LegacyLine(
        level if isinstance(level, int) else logging.INFO, message, created_at, "stdout"
    )


def legacy_lines(logs: dict | None) -> list[LegacyLine]:
    """The column's lines, oldest first.

    stdout holds every line (newest first, capped); stderr repeats the bare message of
    ERROR lines, uncapped upstream, so an error found only in stderr is older than what
    stdout kept: it is placed first.
    """
    logs = logs if isinstance(logs, dict) else {}
    stdout = [parse_stdout_entry(str(e)) for e in reversed(logs.get("stdout") or [])]
    in_stdout = {line.message for line in stdout}
    stderr_only = [
        LegacyLine(logging.ERROR, str(e), None, "stderr")
        for e in reversed(logs.get("stderr") or [])
        if str(e) not in in_stdout
    ]
    return stderr_only + stdout
