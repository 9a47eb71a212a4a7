"""`ami bench logs` runs every mode end to end and reports it (figures are checked for sanity,
not for speed)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ami_lab.bench.logs.writer import message
from ami_lab.bench.logs.writers import BENCH_MODES, JSON_COLUMN_MODES, STREAM_HANDLER_MODE

LONGEST_MESSAGE = len(message(1, 19))  # 2 writers x 20 lines


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
        assert row["cpu_us_per_line"] > 0 and row["cpu_x_stream_handler"] > 0, mode
        if mode not in ("seed", STREAM_HANDLER_MODE):  # the seed's emit may lose lines
            assert row["stored"] == row["emitted"], mode
        if mode != "raw_copy":  # no per-line emit to time
            assert row["p50_x_stream_handler"] > 0, mode
    assert results["raw_copy"]["ratio_to_raw_copy"] == 1
    assert "Job log write backends" in done.stdout
    assert "sync / raw_insert:" in done.stdout  # sync against its own ceiling (issue 14)
    assert "Cost per line" in done.stdout


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_bench_logs_measures_bytes_per_line_against_a_plain_stream_handler(
    subprocess_env, tmp_path
):
    out = tmp_path / "bench.json"
    modes = "raw_insert,sync,buffered,legacy_json,stream_handler"
    args = ["--processes", "2", "--lines", "20", "--legacy-lines", "10", "--modes", modes]
    done = subprocess.run(
        [sys.executable, "-m", "ami", "bench", "logs", *args, "--json", str(out)],
        env=subprocess_env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = {row["mode"]: row for row in json.loads(out.read_text())}
    baseline = results.pop(STREAM_HANDLER_MODE)
    assert baseline["stored"] == 0 and baseline["heap_bytes_per_line"] is None
    assert baseline["cpu_x_stream_handler"] == baseline["p50_x_stream_handler"] == 1
    # A text line: a timestamp, level, logger name and pid before the message.
    assert LONGEST_MESSAGE < baseline["text_bytes_per_line"] < LONGEST_MESSAGE + 100
    for mode, row in results.items():
        if mode in JSON_COLUMN_MODES:  # not stored in JobLog
            assert row["heap_bytes_per_line"] is None and row["stored_x_text"] is None
            continue
        # The heap holds the message and more (ids, times, key, context, tuple header);
        # the five indexes take something for every line.
        assert row["heap_bytes_per_line"] > LONGEST_MESSAGE, mode
        assert row["index_bytes_per_line"] > 0, mode
        stored = row["heap_bytes_per_line"] + row["index_bytes_per_line"]
        assert row["stored_x_text"] == round(stored / baseline["text_bytes_per_line"], 2)
    assert "text line (stream_handler's output)" in done.stdout


@pytest.mark.django_db(transaction=True)
def test_bench_rejects_an_unknown_mode(subprocess_env):
    done = subprocess.run(
        [sys.executable, "-m", "ami", "bench", "logs", "--modes", "sync,nope"],
        env=subprocess_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "unknown mode(s): nope" in done.stderr
