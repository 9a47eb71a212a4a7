"""Make a log line storable, whatever the caller passed: the handler's boundary.

PostgreSQL refuses, in `text`, NUL characters and anything that is not UTF-8 (a Python str
with lone surrogates, e.g. a file name decoded with `surrogateescape`, cannot be encoded at
all); in `jsonb` also `\\u0000`, unpaired surrogate escapes, NaN and Infinity. Control
characters other than NUL are valid in both and kept. The context is made JSON-safe: bytes,
sets and objects become strings or lists, non-str keys strings, nesting and size bounded.
Nothing here raises: a value whose `__str__` raises is shown by type name.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

TRUNCATION_MARKER = " [... truncated {dropped} characters]"
MAX_CONTEXT_CHARS = 8192  # a context larger than this (as JSON) is replaced by a summary
MAX_DEPTH = 16  # deeper containers (or a container holding itself) are cut with a marker
MAX_ITEMS = 1000  # items kept per container; the context is size-capped afterwards anyway
MAX_INT = 2**63 - 1  # larger ints are kept as text: Python's json refuses >4300 digits
REPLACEMENT = "\ufffd"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Drop NUL, replace surrogates (not encodable as UTF-8) with U+FFFD."""
    if text.isascii():
        return text.replace("\x00", "") if "\x00" in text else text
    return _UNSTORABLE.sub(lambda m: "" if m.group() == "\x00" else REPLACEMENT, text)


def safe_str(value: object) -> str:
    """`str(value)`, or its repr, or its type name: never raises (but a soft time limit)."""
    for render in (str, repr):
        try:
            text = render(value)
        except SoftTimeLimitExceeded:
            raise
        except Exception:  # noqa: BLE001 - any __str__ may raise anything
            continue
        if isinstance(text, str):
            return clean_text(text)
    return f"<unprintable {type(value).__name__}>"


def clean_message(message: object, max_chars: int) -> str:
    """A storable message, truncated to `max_chars` with a marker."""
    message = clean_text(message) if isinstance(message, str) else safe_str(message)
    if len(message) <= max_chars:
        return message
    marker = TRUNCATION_MARKER.format(dropped=len(message) - max_chars)
    return message[:max_chars] + marker


def clean_context(context: object) -> dict[str, Any]:
    """Return a JSON-serialisable, storable copy of `context`, size-capped."""
    if not isinstance(context, dict):
        return {"context": safe_str(context)}
    if _is_plain(context):
        return context
    cleaned = _clean_value(context, 0)
    encoded = json.dumps(cleaned)
    if len(encoded) > MAX_CONTEXT_CHARS:
        return {"context_truncated": True, "keys": sorted(cleaned)[:50]}
    return cleaned


def _is_storable(text: str) -> bool:
    return clean_text(text) is text


def _is_plain(context: dict[Any, Any]) -> bool:
    """The common case, cheaply: flat, str keys, small plain values, storable text.

    Runs on every line: ASCII text without NUL (nearly every key and value) is recognised
    inline, without a call.
    """
    size = 0
    for key, value in context.items():
        if type(key) is not str:
            return False
        if not (key.isascii() and "\x00" not in key) and not _is_storable(key):
            return False
        kind = type(value)
        if kind is str:
            if not (value.isascii() and "\x00" not in value) and not _is_storable(value):
                return False
            size += len(value) + len(key)
        elif (kind is int and -MAX_INT <= value <= MAX_INT) or kind is bool or value is None:
            size += len(key) + 20
        else:
            return False
    return size < MAX_CONTEXT_CHARS // 2


def _clean_value(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value) if -MAX_INT <= value <= MAX_INT else f"<int of {value.bit_length()} bits>"
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else str(float(value))
    if isinstance(value, bytes | bytearray | memoryview):
        return clean_text(bytes(value[:MAX_CONTEXT_CHARS]).decode("utf-8", "backslashreplace"))
    if isinstance(value, dict | list | tuple | set | frozenset):
        if depth >= MAX_DEPTH:
            return "<nested too deep>"
        return _clean_container(value, depth + 1)
    return safe_str(value)


def _clean_container(value: Any, depth: int) -> Any:
    if isinstance(value, dict):
        items = list(value.items())[:MAX_ITEMS]
        return {_clean_key(k): _clean_value(v, depth) for k, v in items}
    return [_clean_value(v, depth) for v in list(value)[:MAX_ITEMS]]


def _clean_key(key: object) -> str:
    return clean_text(key) if isinstance(key, str) else safe_str(key)
