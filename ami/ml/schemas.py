"""Wire formats between the server and processing services (pydantic, strict about input).

A processing service reserves `Task`s and posts a `ResultBatch`; each `PipelineResult` is
either the detections found in one image or the error that prevented processing it.
Unknown fields are rejected, so a typo is a 400 that names it, not a silent drop.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

MAX_LABEL_LENGTH = 200
MAX_ERROR_LENGTH = 10_000
MAX_DETECTIONS_PER_IMAGE = 10_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskMessage(_Strict):
    """The NATS message of one task."""

    job_id: int
    image_id: int


class Task(_Strict):
    """One reserved task, as handed to a processing service."""

    image_id: int
    image_url: str
    reply_subject: str
    attempt: int = 1


class ReserveRequest(_Strict):
    batch: int = Field(default=10, ge=1)


class BoundingBox(_Strict):
    x1: float = Field(ge=0)
    y1: float = Field(ge=0)
    x2: float = Field(ge=0)
    y2: float = Field(ge=0)

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
    label: str = Field(min_length=1, max_length=MAX_LABEL_LENGTH)
    score: float = Field(ge=0, le=1)
    algorithm: str = Field(min_length=1)


class DetectionResult(_Strict):
    bbox: BoundingBox
    score: float = Field(default=1.0, ge=0, le=1)
    algorithm: str = Field(min_length=1)
    classifications: list[ClassificationResult] = Field(default_factory=list)


class PipelineResult(_Strict):
    """The outcome for one image: detections, or an error (never both)."""

    image_id: int = Field(gt=0)
    reply_subject: str = Field(min_length=1)
    detections: list[DetectionResult] = Field(
        default_factory=list, max_length=MAX_DETECTIONS_PER_IMAGE
    )
    error: str | None = Field(default=None, min_length=1, max_length=MAX_ERROR_LENGTH)

    @model_validator(mode="after")
    def _error_or_detections(self) -> PipelineResult:
        if self.error is not None and self.detections:
            raise ValueError("a result has either detections or an error, not both")
        return self

    def algorithm_keys(self) -> set[str]:
        keys = {d.algorithm for d in self.detections}
        keys.update(c.algorithm for d in self.detections for c in d.classifications)
        return keys


class ResultBatch(_Strict):
    results: list[PipelineResult] = Field(min_length=1)


def describe_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Flatten pydantic errors to [{"field": "results.0.bbox.x2", "message": "..."}]."""
    return [
        {"field": ".".join(str(part) for part in error["loc"]) or "(body)", "message": error["msg"]}
        for error in exc.errors()
    ]
