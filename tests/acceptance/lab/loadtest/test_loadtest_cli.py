"""`ami loadtest`, CI-sized, with every fault on: the properties the incident issue asks for.

sync, buffered and redis finish the job with exact counters, lose no line (except, under SIGKILL,
lines still in flight in the killed process), duplicate none, and no fault causes more than
one error line. legacy_json shows the upstream incident: its writers wait on the job row.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


@pytest.fixture
def loadtest_figures(subprocess_env, tmp_path) -> dict[str, dict]:
    out = tmp_path / "figures.json"
    argv = [
        sys.executable, "-m", "ami", "loadtest",
        "--images", "60", "--inference-delay", "0.1", "--all-faults", "--timeout", "240",
        "--lines-per-result", "3",  # a chatty pipeline: the log volume the incident had
        "--json", str(out), "--out", str(tmp_path / "run"),
    ]  # fmt: skip
    done = subprocess.run(argv, env=subprocess_env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    print(done.stdout[-6000:])  # the table, in the test report when it fails
    return {mode["mode"]: mode for mode in json.loads(out.read_text())["modes"]}


def test_new_backends_survive_every_fault_and_legacy_ones_do_not(loadtest_figures):
    for mode in ("sync", "buffered", "redis"):
        figures = loadtest_figures[mode]
        assert figures["status"] == "SUCCESS", figures
        assert figures["counters_exact"], figures["counter_problems"]
        assert figures["lines_emitted"] > 60
        assert figures["lines_lost_otherwise"] == 0, figures
        assert figures["lines_duplicated"] == 0, figures
        assert figures["most_error_lines_per_fault"] <= 1, figures["error_lines"]
        assert figures["fault_events"] > 0
    legacy = [loadtest_figures["legacy_json"], loadtest_figures["in_transaction"]]
    assert all(f["counters_exact"] for f in legacy)  # the pipeline itself stays correct
    # The upstream signature that shows in every run: legacy_json's writers wait on the job
    # row. Its lost lines (concurrent read-modify-write of the JSON column) need concurrent
    # appends to collide, a matter of chance at this size: 7 of 797 lines in the 742-image
    # run (docs/benchmarks.md), often none here; printed, not asserted.
    assert loadtest_figures["legacy_json"]["lock_waiter_seconds"] > 0
    print("legacy lines lost:", [f["lines_lost_otherwise"] for f in legacy])
