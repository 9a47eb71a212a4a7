"""The type and range of every `JOB_LOG_*` setting, checked once for the system check, the
startup of every process (`wiring.install`) and the backend constructors.

A batch size or queue bound of 0 would make the flusher busy-loop and drop every line; a NaN
interval would make it wait forever. Such values are configuration errors, not lines lost.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_SECONDS = 86_400.0 * 365  # a year: anything longer is a unit mistake


def is_int(value: object) -> bool:
    """An int, not a bool (True is an int in Python, never a line count)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """A finite int or float, not a bool."""
    return (is_int(value) or isinstance(value, float)) and math.isfinite(value)


def is_level(value: object) -> bool:
    if is_int(value):
        return 0 <= value <= 32767  # stored in a smallint
    return isinstance(value, str) and isinstance(logging.getLevelName(value.upper()), int)


@dataclass(frozen=True)
class Rule:
    accepts: Callable[[Any], bool]
    expected: str


def _int_at_least(low: int) -> Rule:
    return Rule(lambda v: is_int(v) and v >= low, f"an integer >= {low}")


def _seconds(low: float, *, inclusive: bool, high: float = MAX_SECONDS) -> Rule:
    bound = ">=" if inclusive else ">"

    def accepts(v: Any) -> bool:
        return is_number(v) and (v >= low if inclusive else v > low) and v <= high

    return Rule(accepts, f"a number of seconds {bound} {low:g} and <= {high:g}")


RULES: dict[str, Rule] = {
    "JOB_LOG_BACKEND": Rule(lambda v: isinstance(v, str) and bool(v), "a backend name"),
    "JOB_LOG_DUAL_WRITE": Rule(lambda v: isinstance(v, bool), "true or false"),
    "JOB_LOG_LEVEL": Rule(is_level, "a logging level name (INFO, ...) or number 0-32767"),
    "JOB_LOG_MAX_MESSAGE_CHARS": _int_at_least(1),
    "JOB_LOG_REPEAT_WINDOW": _seconds(0, inclusive=False, high=3600),
    "JOB_LOG_BUFFER_BATCH_SIZE": _int_at_least(1),
    "JOB_LOG_BUFFER_INTERVAL": _seconds(0, inclusive=False, high=3600),
    "JOB_LOG_BUFFER_MAX_LINES": _int_at_least(1),
    "JOB_LOG_FLUSH_TIMEOUT": _seconds(0, inclusive=True, high=3600),
    "JOB_LOG_LEGACY_MAX_LINES": _int_at_least(1),
    "JOB_LOG_RETENTION": Rule(lambda v: isinstance(v, str), 'a duration like "90d", or ""'),
    "JOB_LOG_RETENTION_INTERVAL": _seconds(0, inclusive=False),
}


def setting_problems(values: Mapping[str, Any]) -> list[str]:
    """One message per `JOB_LOG_*` setting in `values` whose type or range is wrong."""
    problems = []
    for name, rule in RULES.items():
        if name in values and not rule.accepts(values[name]):
            problems.append(f"{name}={values[name]!r}: expected {rule.expected}")
    return problems


def require(name: str, value: Any, rule_name: str) -> None:
    """Raise ValueError if `value` breaks the rule of setting `rule_name` (constructors)."""
    rule = RULES[rule_name]
    if not rule.accepts(value):
        raise ValueError(f"{name}={value!r}: expected {rule.expected} ({rule_name})")
