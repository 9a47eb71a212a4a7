"""`ami bench results` end to end on a tiny job: the JSON figures are there and sane.

Figures are printed, never asserted against a target (the machine is shared and noisy);
exactness of the counters is asserted, because the command exists to check it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

KEYS = {
    "results_per_s", "exact", "sent", "stored", "cpu_ms_per_result", "sql_per_result",
    "copy_ceiling", "ratio_to_ceiling", "batch", "concurrency", "images", "seconds", "loadavg",
}  # fmt: skip


def json_line(stdout: str) -> dict:
    """The one JSON object among the command's output lines (job log lines echo too)."""
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, stdout
    return json.loads(lines[0])


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_bench_results_reports_exact_counters_and_costs(subprocess_env, tmp_path):
    env = {**subprocess_env, "AMI_MEDIA_ROOT": str(tmp_path / "media")}
    args = ["--images", "40", "--batch", "8", "--concurrency", "2", "--json", "--timeout", "60"]
    done = subprocess.run(
        [sys.executable, "-m", "ami", "bench", "results", *args],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json_line(done.stdout)
    assert set(figures) >= KEYS
    assert figures["exact"] is True
    assert figures["stored"] == figures["sent"]
    assert figures["sent"]["processed"] == 40 and figures["sent"]["detections"] > 0
    assert figures["results_per_s"] > 0 and figures["cpu_ms_per_result"] > 0
    assert 0 < figures["sql_per_result"] < 10  # a batch of 8 costs a few statements
    ceiling = figures["copy_ceiling"]
    assert ceiling["detections"] == figures["sent"]["detections"]
    assert ceiling["classifications"] == figures["sent"]["classifications"]
    assert ceiling["results_per_s"] > 0 and figures["ratio_to_ceiling"] > 0
