"""The ceiling for saving results: a plain COPY of the same rows, timed.

The same detection and classification rows the benchmark's results produce (same count,
same values) are copied with `cursor.copy` into scratch tables built like
`main_detection` and `main_classification`: `LIKE ... INCLUDING ALL` (columns, defaults,
identity, indexes, the unique constraints) plus the same foreign keys, re-pointed so a
classification references the scratch detections. The tables are ordinary logged tables
(a temporary table writes no WAL, which would flatter the ceiling), created before the
timing and dropped after it. Timed: both COPYs and the commit; the rows are built before.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from django.db import connection, transaction

from ami.ml.orchestration.results import algorithm_ids

SCRATCH = {"main_detection": "bench_ceiling_detection"}
SCRATCH["main_classification"] = "bench_ceiling_classification"
DETECTION_COLUMNS = ("id", "source_image_id", "algorithm_id", "x1", "y1", "x2", "y2", "score")
CLASSIFICATION_COLUMNS = ("id", "detection_id", "algorithm_id", "label", "score")


def copy_ceiling(results: list[dict]) -> dict:
    """COPY the rows of `results` into scratch tables; return rows, seconds and results/s."""
    detections, classifications = _rows(results)
    _create_scratch_tables()
    try:
        with connection.cursor() as cursor:
            started = time.perf_counter()
            with transaction.atomic():
                _copy(cursor, "main_detection", DETECTION_COLUMNS, detections)
                _copy(cursor, "main_classification", CLASSIFICATION_COLUMNS, classifications)
            seconds = time.perf_counter() - started
    finally:
        _drop_scratch_tables()
    return {
        "detections": len(detections),
        "classifications": len(classifications),
        "seconds": round(seconds, 4),
        "results_per_s": round(len(results) / seconds, 1) if seconds > 0 else None,
    }


def _rows(results: list[dict]) -> tuple[list[tuple], list[tuple]]:
    keys = {d["algorithm"] for r in results for d in r["detections"]}
    keys |= {c["algorithm"] for r in results for d in r["detections"] for c in d["classifications"]}
    algorithms = algorithm_ids(keys)
    detections, classifications = [], []
    for result in results:
        for detection in result["detections"]:
            box = detection["bbox"]
            detection_id = len(detections) + 1
            detections.append(
                (
                    detection_id,
                    result["image_id"],
                    algorithms[detection["algorithm"]],
                    box["x1"],
                    box["y1"],
                    box["x2"],
                    box["y2"],
                    detection["score"],
                )  # fmt: skip
            )
            for label in detection["classifications"]:
                classifications.append(
                    (
                        len(classifications) + 1,
                        detection_id,
                        algorithms[label["algorithm"]],
                        label["label"],
                        label["score"],
                    )  # fmt: skip
                )
    return detections, classifications


def _copy(cursor, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    now = datetime.now(UTC)  # created_at: auto_now_add, no database default
    names = ", ".join((*columns, "created_at"))
    with cursor.copy(f"COPY {SCRATCH[table]} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row((*row, now))


def _create_scratch_tables() -> None:
    _drop_scratch_tables()
    with transaction.atomic(), connection.cursor() as cursor:
        for table, scratch in SCRATCH.items():
            cursor.execute(f"CREATE TABLE {scratch} (LIKE {table} INCLUDING ALL)")
        for table, scratch in SCRATCH.items():
            cursor.execute(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
                " WHERE conrelid = %s::regclass AND contype = 'f'",
                [table],
            )
            for (definition,) in cursor.fetchall():
                definition = definition.replace(
                    "REFERENCES main_detection(", f"REFERENCES {SCRATCH['main_detection']}("
                )
                cursor.execute(f"ALTER TABLE {scratch} ADD {definition}")


def _drop_scratch_tables() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {', '.join(reversed(SCRATCH.values()))}")
