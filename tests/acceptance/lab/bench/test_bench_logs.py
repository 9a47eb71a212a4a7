"""`ami bench logs` runs every mode end to end and reports it (figures are not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ami_lab.bench.logs.writers import BENCH_MODES


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_bench_logs_reports_every_mode(subprocess_env, tmp_path):
    out = tmp_path / "bench.json"
    args = ["--processes", "2", "--lines", "20", "--legacy-lines", "10", "--json", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "ami", "bench", "logs", *args],
        env=subprocess_env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = {row["mode"]: row for row in json.loads(out.read_text())}
    assert set(results) == set(BENCH_MODES)
    for mode, row in results.items():
        assert row["emitted"] == (2 * 10 if mode in ("legacy_json", "seed") else 2 * 20)
        assert row["lines_per_s"] > 0 and row["ratio_to_raw_copy"] > 0
        if mode != "seed":  # the seed's emit may lose lines: that is what it is there to show
            assert row["stored"] == row["emitted"], mode
    assert results["raw_copy"]["ratio_to_raw_copy"] == 1
    assert "Job log write backends" in done.stdout
    assert "sync / raw_insert:" in done.stdout  # sync against its own ceiling (issue 14)


@pytest.mark.django_db(transaction=True)
def test_bench_rejects_an_unknown_mode(subprocess_env):
    done = subprocess.run(
        [sys.executable, "-m", "ami", "bench", "logs", "--modes", "sync,nope"],
        env=subprocess_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "unknown mode(s): nope" in done.stderr
