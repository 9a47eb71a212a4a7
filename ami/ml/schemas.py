"""Our own task and result payloads (pydantic, strict), and the text rules of every input.

`TaskMessage` is the NATS message of one task. `PipelineResult` is what the API queues for
`process_nats_pipeline_result`: one image's detections, or the error that prevented
processing it. The processing-service protocol's shapes live in `ami.ml.api.wire`, which
converts them to these at the API boundary, so the queued payload stays small and ours.
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

MAX_LABEL_LENGTH = 200
MAX_ERROR_LENGTH = 10_000
MAX_ALGORITHM_KEY_LENGTH = 100  # Algorithm.key's column
MAX_REPLY_SUBJECT_LENGTH = 512
MAX_DETECTIONS_PER_IMAGE = 10_000
MAX_CLASSIFICATIONS_PER_DETECTION = 1_000
MAX_COORDINATE = 1_000_000.0  # pixels; larger is no real image
MAX_ID = 2**63 - 1  # PostgreSQL bigint

# PostgreSQL text cannot hold NUL, UTF-8 cannot hold a lone surrogate, and a control
# character in a label or a log line is never meant: each would fail later, far from here.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_CONTROL_EXCEPT_WHITESPACE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _printable(value: str, control: re.Pattern[str]) -> str:
    if _LONE_SURROGATE.search(value):
        raise ValueError("must be valid Unicode (no lone surrogates)")
    if "\x00" in value:
        raise ValueError("must not contain NUL (\\x00)")
    if control.search(value):
        raise ValueError("must not contain control characters")
    return value


def one_line_text(value: str) -> str:
    """A label: printable text on one line."""
    return _printable(value, _CONTROL)


def multi_line_text(value: str) -> str:
    """An error message: printable text; tabs and line breaks allowed."""
    return _printable(value, _CONTROL_EXCEPT_WHITESPACE)


Label = Annotated[
    str, Field(min_length=1, max_length=MAX_LABEL_LENGTH), AfterValidator(one_line_text)
]
ErrorText = Annotated[
    str, Field(min_length=1, max_length=MAX_ERROR_LENGTH), AfterValidator(multi_line_text)
]
AlgorithmKey = Annotated[
    str,
    Field(min_length=1, max_length=MAX_ALGORITHM_KEY_LENGTH, pattern=r"^[-a-zA-Z0-9_]+$"),
]
# A NATS reply subject: printable ASCII without spaces.
ReplySubject = Annotated[
    str, Field(min_length=1, max_length=MAX_REPLY_SUBJECT_LENGTH, pattern=r"^[!-~]+$")
]
Score = Annotated[float, Field(ge=0, le=1)]
Coordinate = Annotated[float, Field(ge=0, le=MAX_COORDINATE)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class TaskMessage(_Strict):
    """The NATS message of one task."""

    job_id: int
    image_id: int


class BoundingBox(_Strict):
    x1: Coordinate
    y1: Coordinate
    x2: Coordinate
    y2: Coordinate

    @field_validator("x1", "y1", "x2", "y2")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> BoundingBox:
        if self.x2 <= self.x1 or self.y2 <= self.y1:
            raise ValueError("x2 must be greater than x1 and y2 greater than y1")
        return self

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)


class ClassificationResult(_Strict):
    label: Label
    score: Score
    algorithm: AlgorithmKey


class DetectionResult(_Strict):
    bbox: BoundingBox
    score: Score = 1.0
    algorithm: AlgorithmKey
    classifications: list[ClassificationResult] = Field(
        default_factory=list, max_length=MAX_CLASSIFICATIONS_PER_DETECTION
    )


class PipelineResult(_Strict):
    """The outcome for one image: detections, or an error (never both)."""

    image_id: int = Field(gt=0, le=MAX_ID)
    reply_subject: ReplySubject
    detections: list[DetectionResult] = Field(
        default_factory=list, max_length=MAX_DETECTIONS_PER_IMAGE
    )
    error: ErrorText | None = None

    @model_validator(mode="after")
    def _error_or_detections(self) -> PipelineResult:
        if self.error is not None and self.detections:
            raise ValueError("a result has either detections or an error, not both")
        return self

    def algorithm_keys(self) -> set[str]:
        keys = {d.algorithm for d in self.detections}
        keys.update(c.algorithm for d in self.detections for c in d.classifications)
        return keys


def describe_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Flatten pydantic errors to [{"field": "results.0.bbox.x2", "message": "..."}]."""
    return [
        {"field": ".".join(str(part) for part in error["loc"]) or "(body)", "message": error["msg"]}
        for error in exc.errors()
    ]
