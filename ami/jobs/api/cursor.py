"""Log positions: a line's place in the `(txid, id)` order, and its opaque string form.

Clients see a cursor as an opaque string (`"<txid>.<id>"`); the server compares cursors as
pairs. Every bound is exclusive: `after=c` serves lines after `c`, `before=c` lines before it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_BIGINT = 2**63 - 1  # both parts are PostgreSQL bigints
_CURSOR = re.compile(r"([0-9]{1,19})\.([0-9]{1,19})")  # ASCII digits only: no `²`, no `٣`
SHOWN_CHARS = 40  # of a bad value, echoed in the error


class BadCursor(ValueError):
    """A cursor string that is not one the server handed out."""


@dataclass(frozen=True, order=True)
class Cursor:
    """A position between lines: lines compare by `(txid, id)`."""

    txid: int
    id: int

    def __str__(self) -> str:
        return f"{self.txid}.{self.id}"

    @classmethod
    def parse(cls, raw: str) -> Cursor:
        """The cursor `raw` names; BadCursor if it is not `<txid>.<id>` within bigint range."""
        match = _CURSOR.fullmatch(raw)
        if match is None:
            raise BadCursor(f"must be a cursor from a previous response, got {raw[:SHOWN_CHARS]!r}")
        txid, line_id = int(match[1]), int(match[2])
        if txid > MAX_BIGINT or line_id > MAX_BIGINT:
            raise BadCursor(f"out of range: {raw[:SHOWN_CHARS]!r}")
        return cls(txid, line_id)

    @classmethod
    def of(cls, row: dict) -> Cursor:
        """The position of a line read with its `txid` and `id`."""
        return cls(row["txid"], row["id"])

    @classmethod
    def below_horizon(cls, horizon: int) -> Cursor:
        """The last position before `horizon`: `after` it come exactly the lines >= horizon."""
        return cls(horizon - 1, MAX_BIGINT) if horizon > 0 else START

    def successor(self) -> Cursor:
        """The next position: `before` it lies this line too."""
        if self.id < MAX_BIGINT:
            return Cursor(self.txid, self.id + 1)
        return Cursor(self.txid + 1, 0)

    def predecessor(self) -> Cursor:
        """The previous position: `after` it comes this line too."""
        if self.id > 0:
            return Cursor(self.txid, self.id - 1)
        return Cursor(self.txid - 1, MAX_BIGINT) if self.txid > 0 else START


START = Cursor(0, 0)  # before every line: ids start at 1
