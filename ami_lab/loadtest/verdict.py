"""Whether a load test run passed: every job right, every counter exact, no line lost.

The legacy log modes are run to show how they lose lines, so only the modes that
guarantee their lines (`GUARANTEED_MODES`) are failed for lost or duplicated lines; every
mode is failed for a wrong final state or an inexact counter, since the pipeline's
correctness does not depend on the log mode.
"""

from __future__ import annotations

from ami_lab.loadtest.lost_lines import LostLine
from ami_lab.loadtest.report import ModeOutcome

GUARANTEED_MODES = frozenset({"sync", "buffered"})


def problems(result: ModeOutcome) -> list[str]:
    """Everything wrong with one mode's run, one sentence each (empty: it passed)."""
    found = []
    if result.stuck:
        found.append(result.stuck)
    elif result.status != "SUCCESS":
        reason = f" ({result.failure_reason})" if result.failure_reason else ""
        found.append(f"job ended {result.status or 'unknown'}{reason}, expected SUCCESS")
    found.extend(f"counter: {problem}" for problem in result.counter_problems)
    if result.mode in GUARANTEED_MODES:
        if result.lines_lost_otherwise:
            hostile = result.lines_lost_hostile
            detail = f" ({hostile} of them with hostile content)" if hostile else ""
            found.append(f"{result.lines_lost_otherwise} log lines lost{detail}{_lost(result)}")
        if result.lines_duplicated:
            found.append(f"{result.lines_duplicated} log lines duplicated")
    for fault in result.phase_faults:
        # A phase the job never reached is no harness failure (the job's is reported), nor
        # one that a legacy mode's log writes kept from happening under the fault.
        if fault["reached"] and not fault["covered"] and result.mode in GUARANTEED_MODES:
            found.append(f"fault {fault['fault']} did not cover its phase (harness timing)")
    return found


def _lost(result: ModeOutcome) -> str:
    """The lost lines not explained by a SIGKILL, one per line (as many as were described)."""
    lines = [LostLine(**line) for line in result.lost_lines]
    unexpected = [line.describe() for line in lines if not line.in_flight]
    return "".join(f"\n    lost {text}" for text in unexpected)


def failures(results: list[ModeOutcome]) -> dict[str, list[str]]:
    """Problems per mode, for the modes that have any."""
    return {r.mode: found for r in results if (found := problems(r))}


def message(failed: dict[str, list[str]]) -> str:
    lines = [f"{mode}: {problem}" for mode, found in failed.items() for problem in found]
    return "load test failed:\n  " + "\n  ".join(lines)
