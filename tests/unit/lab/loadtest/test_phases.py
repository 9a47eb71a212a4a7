"""Phase classification, coverage of a fault window, fault plans and the run's verdict."""

from __future__ import annotations

import pytest
from django.core.management.base import CommandError

from ami.jobs.states import FINAL_STATES
from ami_lab.loadtest import verdict
from ami_lab.loadtest.command import build_phase_faults
from ami_lab.loadtest.phase_faults import (
    APPLICABLE,
    PhaseFault,
    PhaseFaultSpec,
    Targets,
    default_specs,
    parse_phases,
    random_specs,
)
from ami_lab.loadtest.phases import FINAL_STATUSES, PHASES, JobState, PhaseTimeline, classify
from ami_lab.loadtest.report import ModeOutcome


@pytest.mark.parametrize(
    ("state", "phase"),
    [
        (JobState("CREATED", "PENDING", 0, 0, None), "start"),
        (JobState("PENDING", "PENDING", 0, 0, None), "start"),
        (JobState("STARTED", "PENDING", 0, 0, None), "start"),
        (JobState("STARTED", "STARTED", 0, 0, None), "collect"),
        (JobState("STARTED", "SUCCESS", 10, 0, None), "publish"),
        (JobState("STARTED", "SUCCESS", 10, 0, 4), "publish"),
        (JobState("STARTED", "SUCCESS", 10, 0, 10), "results"),
        (JobState("STARTED", "SUCCESS", 10, 3, None), "results"),
        (JobState("STARTED", "SUCCESS", 10, 10, 10), "finish"),
        (JobState("SUCCESS", "SUCCESS", 10, 10, None), "final"),
        (JobState("COMPLETED_WITH_ERRORS", "SUCCESS", 10, 10, None), "final"),
        (JobState("REVOKED", "STARTED", 10, 0, None), "final"),
    ],
)
def test_classify(state, phase):
    assert classify(state) == phase


def test_the_watcher_knows_every_final_status():
    assert {str(status) for status in FINAL_STATES} == FINAL_STATUSES


def timeline(*samples: tuple[float, str]) -> PhaseTimeline:
    line = PhaseTimeline()
    for at, phase in samples:
        line.add(at, phase)
    return line


def test_a_phase_seen_inside_the_window_is_covered():
    line = timeline((0, "start"), (1, "publish"), (2, "publish"), (3, "results"))
    assert line.covered("publish", 1.5, 2.5)
    assert not line.covered("publish", 2.5, 2.9)


def test_an_unseen_short_phase_is_covered_only_by_a_window_spanning_its_whole_interval():
    line = timeline((0, "start"), (1, "start"), (2, "results"))  # collect/publish unseen
    assert line.span("collect") == (1, 2)
    assert line.covered("collect", 0.5, 2.5)
    assert not line.covered("collect", 1.5, 2.5)  # opened after the job may have collected
    assert not line.covered("collect", 0.5, 1.5)


def test_a_phase_never_left_has_no_span():
    line = timeline((0, "start"), (1, "publish"))
    assert line.span("publish") is None
    assert not line.covered("results", 0, 10)
    assert not line.reached("results")


def test_parse_phases():
    assert parse_phases("finish, start") == ["start", "finish"]
    assert parse_phases("all") == list(PHASES)
    assert parse_phases("") == []
    with pytest.raises(ValueError, match="unknown phase launch"):
        parse_phases("start,launch")


def test_random_plans_are_reproducible_from_their_seed_and_fit_their_phase():
    assert random_specs(list(PHASES), 42) == random_specs(list(PHASES), 42)
    plans = {tuple(random_specs(list(PHASES), seed)) for seed in range(20)}
    assert len(plans) > 1
    for plan in plans:
        assert all(spec.kind in APPLICABLE[spec.phase] for spec in plan)


def test_default_plan_uses_the_kind_asked_for_where_it_applies():
    specs = default_specs(["start", "publish"], "nats_down")
    assert [spec.kind for spec in specs] == ["row_lock", "nats_down"]


def test_results_and_finish_never_both_hold_the_job_row():
    specs = default_specs(["results", "finish"], "row_lock")
    assert [spec.kind for spec in specs] == ["row_lock", "db_kill"]
    for seed in range(50):
        kinds = {spec.phase: spec.kind for spec in random_specs(list(PHASES), seed)}
        assert (kinds["results"], kinds["finish"]) != ("row_lock", "row_lock")


def passing(mode: str = "sync") -> ModeOutcome:
    return ModeOutcome(mode=mode, status="SUCCESS", counters_exact=True)


def test_verdict_passes_a_clean_run_and_names_every_problem():
    assert verdict.problems(passing()) == []
    bad = passing()
    bad.stuck = "job still STARTED after the 45 s timeout (process stage STARTED, 0/20 done)"
    bad.counter_problems = ["processed + failed != total"]
    bad.lines_lost = 3
    bad.lines_duplicated = 1
    bad.phase_faults = [
        {"fault": PhaseFaultSpec("finish", "row_lock").label(), "covered": False, "reached": True}
    ]
    found = verdict.problems(bad)
    assert found[0].startswith("job still STARTED")
    assert "counter: processed + failed != total" in found
    assert "3 log lines lost" in found and "1 log lines duplicated" in found
    assert any("did not cover" in problem for problem in found)


def test_verdict_tolerates_lost_lines_only_in_legacy_modes_and_at_sigkill():
    legacy = passing("legacy_json")
    legacy.lines_lost = 5
    assert verdict.problems(legacy) == []
    killed = passing("buffered")
    killed.lines_lost = killed.lines_lost_at_sigkill = 2
    assert verdict.problems(killed) == []
    wrong = passing("buffered")
    wrong.status = "FAILURE"
    assert verdict.problems(wrong) == ["job ended FAILURE, expected SUCCESS"]


@pytest.mark.parametrize(
    ("processed", "failed", "status", "passes"),
    [
        (20, 0, "SUCCESS", True),
        (20, 0, "COMPLETED_WITH_ERRORS", False),  # says errors, counts none
        (17, 3, "COMPLETED_WITH_ERRORS", True),
        (17, 3, "SUCCESS", False),  # hides the failed images
        (0, 20, "FAILURE", True),
        (0, 20, "COMPLETED_WITH_ERRORS", False),
    ],
)
def test_verdict_requires_the_status_to_match_the_image_counts(processed, failed, status, passes):
    result = passing()
    result.status = status
    result.images_processed, result.images_failed = processed, failed
    result.images_total = processed + failed
    assert (verdict.problems(result) == []) == passes


def test_verdict_names_the_failed_images_when_a_status_hides_them():
    result = passing()
    result.images_processed, result.images_failed, result.images_total = 739, 3, 742
    assert verdict.problems(result) == [
        "job ended SUCCESS, expected COMPLETED_WITH_ERRORS (3 of 742 images failed)"
    ]


def fault(phase: str, window: float) -> PhaseFault:
    targets = Targets("postgres://unused", "unused", lambda: 0, lambda: 0)
    return PhaseFault(PhaseFaultSpec(phase, "db_kill", window), targets)


def test_a_chained_window_lasts_its_length_after_the_one_before_closed():
    start, collect = fault("start", 4), fault("collect", 3)
    collect.after = start
    start.window, collect.window = (100.0, 110.0), (100.0, 103.0)  # start held 10 s
    assert start.closes_at() == 104.0  # its own length from when it opened
    assert collect.closes_at() == 113.0  # 3 s after start's window really closed
    alone = fault("collect", 3)
    alone.window = (100.0, 103.0)
    assert alone.closes_at() == 103.0
    assert fault("publish", 3).closes_at() is None  # not open yet


def test_command_options_build_the_fault_plan():
    specs, seed = build_phase_faults({"phases": "publish,start", "phase_fault_window": 2.0})
    assert seed is None
    assert [s.label() for s in specs] == ["start:row_lock:2s", "publish:nats_down:2s"]
    drawn, seed = build_phase_faults({"random_faults": True})
    assert seed is not None and [s.phase for s in drawn] == list(PHASES)
    assert build_phase_faults({"seed": seed}) == (drawn, seed)
    assert build_phase_faults({}) == ([], None)
    with pytest.raises(CommandError, match="--phases: unknown phase"):
        build_phase_faults({"phases": "launch"})
