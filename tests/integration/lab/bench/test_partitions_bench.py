"""`ami bench partitions`, CI-sized: every figure present, one partition read, one day dropped."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_bench_partitions_reads_one_partition_and_drops_one_day(subprocess_env, tmp_path):
    out = tmp_path / "figures.json"
    args = ["--lines", "4000", "--checkpoint", "2000", "--days", "5", "--jobs-per-day", "4"]
    command = [sys.executable, "-m", "ami", "bench", "partitions", *args, "--json", str(out)]
    done = subprocess.run(command, env=subprocess_env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(out.read_text())
    first, last = figures["checkpoints"]
    assert first["lines"] == 2000 and first["partitions"] >= 5  # others' (today's) may exist
    for point in (first, last):
        server = point["newest_100_server"]
        assert len(server["partitions_touched"]) == 1
        assert server["planning_ms_p50"] > 0 and server["execution_ms_p50"] > 0
        assert point["newest 100 (HTTP)"]["p50_ms"] > 0
        assert point["deep page (HTTP)"]["p50_ms"] > 0
        retention = point["retention"]
        assert len(retention["drop_one_day"]["partitions"]) == 1
        assert retention["drop_one_day"]["rows"] > 0
        assert retention["delete_one_day_batched"]["rows"] > 0
        assert retention["empty_pass"]["dropped"] == []
    assert last["partitions"] == first["partitions"] - 2  # two days retired at the first
