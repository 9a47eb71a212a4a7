"""Hostile content: values that break naive code at encoding, storage or parsing boundaries.

Every entry point that takes text or numbers from outside (a log call, a processing
service's result, a query string) is tested with these; a new entry point should be too.
Each corpus is a dict name -> value, so a parametrised test names the case that failed.
"""

from __future__ import annotations

import math

ONE_MB = 1024 * 1024
DEEP_JSON_DEPTH = 10_000

# Strings: each is a problem for some layer (PostgreSQL text rejects NUL, UTF-8 encoders
# reject lone surrogates, terminals and log tooling trip on control and bidi characters).
STRINGS: dict[str, str] = {
    "nul": "bad \x00 name",
    "only_nul": "\x00",
    "lone_low_surrogate": "bad \udc80 name",
    "lone_high_surrogate": "bad \ud800 name",
    "surrogate_pair_reversed": "\udc00\ud800",
    "control_chars": "".join(chr(c) for c in range(1, 32)) + "\x7f",
    "c1_controls": "\x85\x9b\x9f",
    "rtl_override": "abc\u202egpj.exe",
    "zero_width": "a\u200bb\u200cc\u200dd\ufeffe",
    "combining_pile": "e" + "\u0301" * 500,
    "astral": "\U0001f41b\U0001f98b",
    "newlines": "line one\nline two\r\nline three\rend",
    "empty": "",
    "whitespace_only": " \t\n\u00a0\u3000",
    "sql_quote": "'; DROP TABLE jobs_joblog; --",
    "percent_format": "%s %d %(x)s %%",
    "braces_format": "{0} {x} {}",
    "backslashes": "\\x00 \\u0000 \\",
    "one_mb": "x" * ONE_MB,
}

# Numbers that JSON, floats and 64-bit columns disagree about.
NUMBERS: dict[str, float | int] = {
    "nan": math.nan,
    "infinity": math.inf,
    "minus_infinity": -math.inf,
    "negative_zero": -0.0,
    "two_pow_63": 2**63,
    "minus_two_pow_63_minus_1": -(2**63) - 1,
    "ten_pow_100": 10**100,
    "tiny": 5e-324,
    "huge_float": 1.7976931348623157e308,
}


def deep_json(depth: int = DEEP_JSON_DEPTH) -> dict:
    """A dict nested `depth` levels deep (built iteratively: no recursion limit here)."""
    value: dict = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def deep_json_text(depth: int = DEEP_JSON_DEPTH) -> str:
    """The JSON text of `deep_json(depth)`, built without a recursive encoder."""
    return '{"a":' * depth + "{}" + "}" * depth


# Raw query-string values, already percent-encoded (sent as they are, not re-encoded).
QUERY_VALUES: dict[str, str] = {
    "superscript_two": "%C2%B2",  # a digit to str.isdigit(), not to int()
    "nul": "%00",
    "invalid_utf8": "%ff",
    "lone_percent": "%",
    "truncated_escape": "%C2",
    "encoded_surrogate": "%ED%B2%80",
    "negative": "-1",
    "huge_int": str(10**100),
    "two_pow_63": str(2**63),
    "float": "1.5",
    "nan": "NaN",
    "infinity": "Infinity",
    "empty": "",
    "whitespace": "%20%09",
    "rtl": "%E2%80%AE",
    "sql": "%27%3B--",
    "very_long": "9" * 10_000,
    "very_long_text": "a" * 100_000,
}


def all_values() -> dict[str, object]:
    """Strings, numbers and the deep structure, in one dict (for `extra`/context fields)."""
    return {**STRINGS, **NUMBERS, "deep_json": deep_json()}
