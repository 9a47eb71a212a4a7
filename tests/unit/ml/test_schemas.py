"""Result shapes: the protocol's, converted to our own payload, and errors naming the field."""

from __future__ import annotations

import pytest

from ami.ml.api.wire import parse_results, to_internal
from ami.ml.schemas import PipelineResult

REPLY = "$JS.ACK.ami_job_1.job_1_workers.1.1.1.1.0"


def detection(**bbox: float) -> dict:
    box = {"x1": 1.0, "y1": 2.0, "x2": 3.0, "y2": 4.0, **bbox}
    return {
        "source_image_id": "7",
        "bbox": box,
        "algorithm": {"name": "Detector", "key": "det"},
        "classifications": [
            {
                "classification": "b",
                "labels": ["a", "b"],
                "scores": [0.1, 0.9],
                "algorithm": {"name": "Classifier", "key": "cls"},
            }
        ],
    }


def result(*detections: dict) -> dict:
    image = [{"id": "7", "url": "http://x/7.jpg"}]
    body = {"pipeline": "p", "source_images": image, "detections": list(detections)}
    return {"reply_subject": REPLY, "result": body}


def fields(payload: object) -> list[str]:
    _, errors = parse_results(payload)
    return [error["field"] for error in errors]


def test_a_result_becomes_our_own_payload():
    [item], errors = parse_results({"results": [result(detection())]})
    assert errors == []
    internal = to_internal(item)
    assert isinstance(internal, PipelineResult) and internal.image_id == 7
    [found] = internal.detections
    assert found.bbox.as_tuple() == (1.0, 2.0, 3.0, 4.0) and found.algorithm == "det"
    assert [(c.label, c.score, c.algorithm) for c in found.classifications] == [("b", 0.9, "cls")]


def test_an_error_result_and_a_bare_list():
    [item], errors = parse_results(
        [{"reply_subject": REPLY, "result": {"error": "x", "image_id": "7"}}]
    )
    assert errors == []
    internal = to_internal(item)
    assert (internal.image_id, internal.error, internal.detections) == (7, "x", [])


@pytest.mark.parametrize(
    ("bbox", "field"),
    [
        ({"x2": 0.5}, "results.0.result.detections.0.bbox"),
        ({"y1": -1.0}, "results.0.result.detections.0.bbox.y1"),
        ({"x2": float("inf")}, "results.0.result.detections.0.bbox.x2"),
        ({"x1": "left"}, "results.0.result.detections.0.bbox.x1"),
    ],
)
def test_bad_boxes_name_their_field(bbox, field):
    assert fields({"results": [result(detection(**bbox))]}) == [field]


def test_missing_fields_are_named_and_unknown_ones_ignored():
    extra = result(detection())
    extra["result"]["newer"] = 1
    assert fields({"results": [extra]}) == []
    assert fields({"results": [{"result": {}}]})[0] == "results.0.reply_subject"
    assert fields({"results": [{"reply_subject": REPLY, "result": {"error": "x"}}]}) == [
        "results.0.result.image_id"
    ]
    assert fields({}) == ["results"]
    assert fields("text") == ["(body)"]
