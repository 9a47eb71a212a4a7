"""The type and range of every `JOB_LOGS` key and backend option, checked once for the system
check, the startup of every process (`wiring.install`) and the backend constructors.

A batch size or queue bound of 0 would make the flusher busy-loop and drop every line; a NaN
interval would make it wait forever. Such values are configuration errors, not lines lost.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ami.jobs.logging.config import label

MAX_SECONDS = 86_400.0 * 365  # a year: anything longer is a unit mistake
# Constructor keywords the handler fills in itself, never an operator's option.
PRIVATE_OPTIONS = frozenset({"secondary"})


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


# One rule per `JOB_LOGS` key, and per backend option that a backend constructor takes.
RULES: dict[str, Rule] = {
    "BACKEND": Rule(lambda v: isinstance(v, str) and bool(v), "a backend name"),
    "OPTIONS": Rule(lambda v: isinstance(v, Mapping), "a dict of backend options"),
    "DUAL_WRITE": Rule(lambda v: isinstance(v, bool), "true or false"),
    "LEVEL": Rule(is_level, "a logging level name (INFO, ...) or number 0-32767"),
    "FLUSH_TIMEOUT": _seconds(0, inclusive=True, high=3600),
    "RETENTION": Rule(lambda v: isinstance(v, str), 'a duration like "90d", or ""'),
    "RETENTION_INTERVAL": _seconds(0, inclusive=False),
    "PARTITION": Rule(lambda v: v in ("day", "week"), '"day" or "week"'),
    "DRAIN_INTERVAL": _seconds(0, inclusive=False),
}
OPTION_RULES: dict[str, Rule] = {
    "max_message_chars": _int_at_least(1),
    "repeat_window": _seconds(0, inclusive=False, high=3600),
    "batch_size": _int_at_least(1),
    "interval": _seconds(0, inclusive=False, high=3600),
    "max_lines": _int_at_least(1),
    # The redis backend's (ami/jobs/logging/backends/redis.py).
    "redis_url": Rule(lambda v: v is None or (isinstance(v, str) and bool(v)), "a redis:// URL"),
    "redis_timeout": _seconds(0, inclusive=False, high=60),
    "lease": _seconds(0, inclusive=False, high=3600),
    "budget_lines": _int_at_least(0),
    "budget_bytes": _int_at_least(0),
    "budget_tail": _int_at_least(0),
}


def setting_problems(job_logs: Mapping[str, Any]) -> list[str]:
    """One message per key or option of `job_logs` whose name, type or range is wrong.

    Whether the backend takes each option is `unknown_options`' part (it needs the class).
    """
    problems = [
        f"{label(key)}: unknown key, expected one of {', '.join(RULES)}"
        for key in job_logs
        if key not in RULES
    ]
    for key, rule in RULES.items():
        if key in job_logs and not rule.accepts(job_logs[key]):
            problems.append(f"{label(key)}={job_logs[key]!r}: expected {rule.expected}")
    options = job_logs.get("OPTIONS")
    for option, value in options.items() if isinstance(options, Mapping) else ():
        rule = OPTION_RULES.get(option)
        if rule is not None and not rule.accepts(value):
            problems.append(f"{label('OPTIONS', option)}={value!r}: expected {rule.expected}")
    return problems


def constructor_options(cls: type) -> set[str]:
    """The keyword options a backend's constructor takes, up its chain of `**kwargs`."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        parameters = inspect.signature(klass.__init__).parameters.values()
        names |= {p.name for p in parameters if p.kind is p.KEYWORD_ONLY}
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return names - PRIVATE_OPTIONS


def unknown_options(cls: type, options: Mapping[str, Any]) -> list[str]:
    """One message per option in `options` that the backend `cls` does not take."""
    known = constructor_options(cls)
    return [
        f"{label('OPTIONS', option)}: {cls.__name__} takes no such option, "
        f"expected one of {', '.join(sorted(known))}"
        for option in options
        if option not in known
    ]


def require(option: str, value: Any) -> None:
    """Raise ValueError if `value` breaks the rule of backend option `option` (constructors)."""
    rule = OPTION_RULES[option]
    if not rule.accepts(value):
        raise ValueError(f"{label('OPTIONS', option)}={value!r}: expected {rule.expected}")
