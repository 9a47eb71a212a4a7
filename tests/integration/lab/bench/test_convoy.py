"""`ami bench convoy` end to end with 12 task processes: counts exact, figures shaped.

Whether waits occur with so few tasks depends on the scheduler, so only their shape is
asserted here; that the sampler sees a wait is asserted by test_lock_sampler.py.
"""

from __future__ import annotations

import subprocess
import sys

import psutil
import pytest

from tests.integration.lab.bench.test_results import json_line

WAIT_KEYS = {"episodes", "p50_ms", "p99_ms", "max_ms"}


@pytest.mark.parametrize("mode", ["new", "before"])
@pytest.mark.django_db(transaction=True, databases="__all__")
def test_bench_convoy_counts_exactly_and_reports_waits(mode, subprocess_env):
    args = ["--tasks", "12", "--images", "96", "--batch", "8", "--mode", mode, "--json"]
    command = [sys.executable, "-m", "ami", "bench", "convoy", *args]
    done = subprocess.run(command, env=subprocess_env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    # The task processes are forks of the bench: they share its command line.
    assert not [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == command]
    figures = json_line(done.stdout)
    assert figures["mode"] == mode and figures["tasks"] == 12
    assert figures["exact"] is True
    assert figures["stored"]["processed"] == 96 == figures["images"]
    assert figures["batches"] == 12 and figures["statements"] >= figures["batches"]
    assert figures["wall_s"] > 0 and figures["samples"] > 0
    for key in ("job_rows", "any_rows"):
        assert set(figures[key]) == WAIT_KEYS
        assert figures[key]["p50_ms"] <= figures[key]["p99_ms"] <= figures[key]["max_ms"]
    assert figures["job_rows"]["episodes"] <= figures["any_rows"]["episodes"]
