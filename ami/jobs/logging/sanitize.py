"""Make a log line storable: bounded message size, no NUL bytes, JSON-safe context."""

from __future__ import annotations

import json
import math
from typing import Any

TRUNCATION_MARKER = " [... truncated {dropped} characters]"
MAX_CONTEXT_CHARS = 8192  # a context larger than this (as JSON) is replaced by a summary


def clean_message(message: str, max_chars: int) -> str:
    """Strip NUL bytes (PostgreSQL text cannot hold them) and truncate with a marker."""
    message = message.replace("\x00", "")
    if len(message) <= max_chars:
        return message
    marker = TRUNCATION_MARKER.format(dropped=len(message) - max_chars)
    return message[:max_chars] + marker


def clean_context(context: dict[str, Any]) -> dict[str, Any]:
    """Return a JSON-serialisable copy without NULs (jsonb rejects `\\u0000`), size-capped."""
    if _is_plain(context):
        return context
    cleaned = _clean_value(context)
    encoded = json.dumps(cleaned, default=str)
    if len(encoded) > MAX_CONTEXT_CHARS:
        return {"context_truncated": True, "keys": sorted(str(k) for k in cleaned)[:50]}
    return json.loads(encoded)


def _is_plain(context: dict[str, Any]) -> bool:
    """The common case, cheaply: flat, str keys, small plain values, no NUL."""
    size = 0
    for key, value in context.items():
        if type(key) is not str or "\x00" in key:
            return False
        kind = type(value)
        if kind is str:
            if "\x00" in value:
                return False
            size += len(value) + len(key)
        elif kind is int or kind is bool or value is None:
            size += len(key) + 20
        else:
            return False
    return size < MAX_CONTEXT_CHARS // 2


def _clean_value(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_clean_value(str(k)): _clean_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean_value(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # jsonb has no NaN or Infinity
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value).replace("\x00", "")
