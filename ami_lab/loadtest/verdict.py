"""Whether a load test run passed: every job right, every counter exact, no line lost.

The legacy log modes are run to show how they lose lines, so only the modes that
guarantee their lines (`GUARANTEED_MODES`) are failed for lost or duplicated lines; every
mode is failed for a wrong final state or an inexact counter, since the pipeline's
correctness does not depend on the log mode. The right final state follows from the job's
own image counts (`expected_status`): no fault fails an image on purpose (a task a fault
breaks is retried), so a run with failed images is also failed by its counters, but its
status must still say so.
"""

from __future__ import annotations

from ami_lab.loadtest.lost_lines import LostLine
from ami_lab.loadtest.report import ModeOutcome

GUARANTEED_MODES = frozenset({"sync", "buffered", "redis"})


def expected_status(processed: int, failed: int) -> str:
    """The final status a job with these image counts must have, written out here rather
    than imported: SUCCESS iff no image failed, FAILURE if every image failed, otherwise
    COMPLETED_WITH_ERRORS."""
    if failed == 0:
        return "SUCCESS"
    return "COMPLETED_WITH_ERRORS" if processed else "FAILURE"


def problems(result: ModeOutcome) -> list[str]:
    """Everything wrong with one mode's run, one sentence each (empty: it passed)."""
    found = []
    expected = expected_status(result.images_processed, result.images_failed)
    if result.stuck:
        found.append(result.stuck)
    elif result.status != expected:
        reason = f" ({result.failure_reason})" if result.failure_reason else ""
        counts = (
            f" ({result.images_failed} of {result.images_total} images failed)"
            if result.images_failed
            else ""
        )
        found.append(f"job ended {result.status or 'unknown'}{reason}, expected {expected}{counts}")
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
