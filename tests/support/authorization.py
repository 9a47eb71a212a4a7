"""The authorization matrix (`authorization_matrix.csv`): every URL route, each method it is
tried with, and the status each kind of caller gets.

A row's `route` is the resolver's pattern (as `routes()` spells it); `url` and `body` hold
placeholders (`{job}`, `{project}`...) filled with the objects of one test world. A row
whose `note` starts with `xfail:` is a known bug: its cells say what should happen, and the
test fails once the bug is fixed, so the note is removed with it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from django.urls import URLPattern, URLResolver, get_resolver

TABLE = Path(__file__).with_name("authorization_matrix.csv")
PRINCIPALS = (
    "anonymous",  # no session, no key
    "outsider",  # signed in, member of another project
    "member",  # signed in, member of the job's project
    "staff",  # a superuser, member of no project
    "foreign_service",  # a processing service of another project
    "own_service",  # a processing service of the job's project
    "revoked_key",  # the key of a revoked service of the job's project
)


@dataclass(frozen=True)
class Row:
    route: str
    method: str
    url: str
    body: str
    expected: dict[str, int]
    note: str = ""  # "xfail: why": a known bug; the cells hold the intended statuses

    @property
    def id(self) -> str:
        return f"{self.method} {self.url}"


def rows() -> list[Row]:
    with TABLE.open(newline="") as handle:
        return [
            Row(
                route=line["route"],
                method=line["method"],
                url=line["url"],
                body=line["body"],
                expected={name: int(line[name]) for name in PRINCIPALS},
                note=line["note"],
            )
            for line in csv.DictReader(handle)
        ]


def routes(patterns=None, prefix: str = "") -> list[str]:
    """Every route of the URLconf (DRF router routes included), as its joined pattern."""
    found = []
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            found.extend(routes(pattern.url_patterns, prefix + str(pattern.pattern)))
        elif isinstance(pattern, URLPattern):
            found.append(prefix + str(pattern.pattern))
    return found
