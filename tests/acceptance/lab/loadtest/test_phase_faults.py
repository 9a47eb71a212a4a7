"""`ami loadtest` with a fault in every phase of the job, CI-sized, through the real CLI.

The run exits non-zero if a job ends wrong, a counter is off or a log line is lost, so
these tests assert on its exit status and print its table and verdict when they fail.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SMALL_RUN = ["--images", "16", "--inference-delay", "0.05", "--batch", "4"]


def run_loadtest(env: dict, out: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    argv = [
        sys.executable, "-m", "ami", "loadtest", *SMALL_RUN, *args,
        "--json", str(out / "figures.json"), "--out", str(out / "run"),
    ]  # fmt: skip
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=540)
    path = out / "figures.json"
    figures = json.loads(path.read_text()) if path.exists() else {}
    return done, {mode["mode"]: mode for mode in figures.get("modes", [])}


def explain(done: subprocess.CompletedProcess) -> str:
    return done.stdout[-5000:] + done.stderr[-3000:]


def assert_every_fault_covered(figures: dict) -> None:
    for mode in figures.values():
        faults = mode["phase_faults"]
        assert faults and all(fault["covered"] for fault in faults), faults


def test_faults_in_start_results_and_finish_leave_every_job_right(subprocess_env, tmp_path):
    done, figures = run_loadtest(
        subprocess_env, tmp_path, "--modes", "sync,buffered",
        "--phases", "start,results,finish", "--timeout", "90",
    )  # fmt: skip
    assert done.returncode == 0, explain(done)
    assert "load test passed" in done.stdout
    assert_every_fault_covered(figures)
    for mode in figures.values():
        assert {"start", "results", "final"} <= set(mode["phases_seen"]), mode["phases_seen"]


def test_faults_while_collecting_and_publishing_leave_the_job_right(subprocess_env, tmp_path):
    """A NATS outage covering publish (and killed connections covering collect)."""
    done, figures = run_loadtest(
        subprocess_env, tmp_path, "--modes", "sync", "--phases", "collect,publish",
        "--timeout", "45",
    )  # fmt: skip
    assert done.returncode == 0, explain(done)
    assert_every_fault_covered(figures)


def test_hostile_log_lines_are_stored_and_lose_no_other_line(subprocess_env, tmp_path):
    """Every third worker log line carries NUL, lone surrogates, control or bidi text."""
    done, figures = run_loadtest(
        subprocess_env, tmp_path, "--modes", "sync,buffered", "--hostile-lines", "3",
        "--timeout", "60",
    )  # fmt: skip
    assert done.returncode == 0, explain(done)
    assert all(mode["lines_lost"] == 0 for mode in figures.values()), figures


def test_an_unknown_phase_is_refused_before_anything_runs(subprocess_env):
    bad = [sys.executable, "-m", "ami", "loadtest", "--phases", "launch", "--seed", "3"]
    done = subprocess.run(bad, env=subprocess_env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "unknown phase launch" in done.stdout + done.stderr
