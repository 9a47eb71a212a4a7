"""Wire schemas: what a processing service may post, and how errors name the field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ami.ml.schemas import PipelineResult, ResultBatch, describe_errors

REPLY = "$JS.ACK.ami_job_1.job_1_workers.1.1.1.1.0"


def detection(**bbox: float) -> dict:
    box = {"x1": 1.0, "y1": 2.0, "x2": 3.0, "y2": 4.0, **bbox}
    return {"bbox": box, "score": 0.5, "algorithm": "det", "classifications": []}


def fields(payload: dict) -> list[str]:
    with pytest.raises(ValidationError) as info:
        ResultBatch.model_validate(payload)
    return [error["field"] for error in describe_errors(info.value)]


def test_a_result_has_detections_or_an_error():
    ok = PipelineResult.model_validate(
        {"image_id": 1, "reply_subject": REPLY, "detections": [detection()]}
    )
    assert ok.detections[0].bbox.as_tuple() == (1.0, 2.0, 3.0, 4.0)
    failed = PipelineResult.model_validate({"image_id": 1, "reply_subject": REPLY, "error": "x"})
    assert failed.error == "x" and failed.detections == []
    assert fields(
        {
            "results": [
                {"image_id": 1, "reply_subject": REPLY, "error": "x", "detections": [detection()]}
            ]
        }
    ) == ["results.0"]


@pytest.mark.parametrize(
    ("bbox", "field"),
    [
        ({"x2": 0.5}, "results.0.detections.0.bbox"),
        ({"y1": -1.0}, "results.0.detections.0.bbox.y1"),
        ({"x2": float("inf")}, "results.0.detections.0.bbox.x2"),
        ({"x1": "left"}, "results.0.detections.0.bbox.x1"),
    ],
)
def test_bad_boxes_name_their_field(bbox, field):
    result = {"image_id": 1, "reply_subject": REPLY, "detections": [detection(**bbox)]}
    assert fields({"results": [result]}) == [field]


def test_unknown_and_missing_fields_are_named():
    assert fields({"results": [{"image_id": 1, "reply_subject": REPLY, "extra": 1}]}) == [
        "results.0.extra"
    ]
    assert fields({"results": [{"reply_subject": REPLY}]}) == ["results.0.image_id"]
    assert fields({"results": []}) == ["results"]
    assert fields({}) == ["results"]
