"""A small server-sent events reader over an httpx streaming response."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class Event:
    event: str = "message"
    data: str = ""
    id: str | None = None
    comments: list[str] = field(default_factory=list)


def events(lines: Iterator[str]) -> Iterator[Event]:
    """Parse SSE lines; a comment-only block (a heartbeat) is yielded as event `comment`."""
    current = Event()
    for line in lines:
        if line == "":
            if current.data or current.id is not None or current.event != "message":
                yield current
            elif current.comments:
                yield Event(event="comment", comments=current.comments)
            current = Event()
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "":
            current.comments.append(value)
        elif name == "event":
            current.event = value
        elif name == "data":
            current.data = f"{current.data}\n{value}" if current.data else value
        elif name == "id":
            current.id = value
