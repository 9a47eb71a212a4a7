"""The processing-service protocol's shapes (the upstream's "v2"), and their conversion.

Written from the protocol as its clients speak it (docs/api.md): registration configs,
tasks, and per-image results that are either a `PipelineResults` or `{"error", "image_id"}`.
Unknown keys are ignored, as upstream does, so a newer client's extra field is not refused;
every field we read is typed and checked (text without NUL, lone surrogates or control
characters; finite numbers within range), so a bad value is a 400 naming it. `to_internal`
turns an accepted result into our own `PipelineResult`, the payload the result task gets.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from ami.ml.schemas import (
    MAX_DETECTIONS_PER_IMAGE,
    MAX_ID,
    AlgorithmKey,
    BoundingBox,
    ClassificationResult,
    DetectionResult,
    ErrorText,
    Label,
    PipelineResult,
    ReplySubject,
    Score,
    multi_line_text,
    one_line_text,
)

MAX_RESULTS_PER_POST = 1_000
MAX_CATEGORIES = 100_000  # scores, logits or labels of one classification
MAX_FEATURES = 100_000
MAX_CLASSIFICATIONS_PER_DETECTION = 1_000
MAX_PIPELINES_PER_REGISTRATION = 100
MAX_ALGORITHMS_PER_PIPELINE = 100
MAX_NAME_LENGTH = 200  # the name columns
MAX_DESCRIPTION_LENGTH = 10_000
MAX_URL_LENGTH = 4_000
MAX_CLIENT_INFO_BYTES = 10_000  # serialized JSON
MAX_VERSION = 2**31 - 1
MAX_SECONDS = 1e9  # inference and total times
_ASCII_DIGITS = re.compile(r"[0-9]{1,19}")


def _image_id(value: object) -> int:
    """An image id as the protocol sends it: a string of digits (or a JSON integer)."""
    if isinstance(value, bool):
        raise ValueError("must be an image id (a string of digits)")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _ASCII_DIGITS.fullmatch(value):
        number = int(value)
    else:
        raise ValueError("must be an image id (a string of digits)")
    if not 0 < number <= MAX_ID:
        raise ValueError(f"must be between 1 and {MAX_ID}")
    return number


ImageId = Annotated[int, BeforeValidator(_image_id)]
Name = Annotated[
    str, Field(min_length=1, max_length=MAX_NAME_LENGTH), AfterValidator(one_line_text)
]
Description = Annotated[
    str, Field(max_length=MAX_DESCRIPTION_LENGTH), AfterValidator(multi_line_text)
]
ShortText = Annotated[str, Field(max_length=MAX_NAME_LENGTH), AfterValidator(one_line_text)]
Url = Annotated[str, Field(max_length=MAX_URL_LENGTH), AfterValidator(one_line_text)]
Slug = Annotated[
    str, Field(min_length=1, max_length=100, pattern=r"^[-a-zA-Z0-9_]+$")
]  # Pipeline.slug's column
Seconds = Annotated[float, Field(ge=0, le=MAX_SECONDS)]


def _open_object(value: dict[str, Any]) -> dict[str, Any]:
    """A free-form JSON object we store: small, and text PostgreSQL's jsonb can hold."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    if "\\u0000" in text or "\x00" in text:
        raise ValueError("must not contain NUL (\\x00)")
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    if len(encoded) > MAX_CLIENT_INFO_BYTES:
        raise ValueError(f"must be at most {MAX_CLIENT_INFO_BYTES} bytes as JSON")
    return value


ClientInfo = Annotated[dict[str, Any], AfterValidator(_open_object)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


# -- registration -----------------------------------------------------------------------------
class CategoryMap(_Wire):
    data: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_CATEGORIES)
    labels: list[str] = Field(default_factory=list, max_length=MAX_CATEGORIES)
    version: str | None = None
    description: str | None = None
    uri: str | None = None


class AlgorithmConfig(_Wire):
    name: Name
    key: AlgorithmKey
    description: Description | None = None
    task_type: ShortText | None = None
    version: int = Field(default=1, ge=0, le=MAX_VERSION)
    version_name: ShortText | None = None
    uri: Url | None = None
    category_map: CategoryMap | None = None


class PipelineStage(_Wire):
    key: str
    name: str


class PipelineConfig(_Wire):
    name: Name
    slug: Slug
    version: int = Field(default=1, ge=0, le=MAX_VERSION)
    description: Description | None = None
    algorithms: list[AlgorithmConfig] = Field(
        default_factory=list, max_length=MAX_ALGORITHMS_PER_PIPELINE
    )
    stages: list[PipelineStage] = Field(default_factory=list, max_length=1_000)


class Registration(_Wire):
    """`POST /projects/{id}/pipelines/`: the main line names the service, the key branch
    sends `client_info`; both are optional here because the key already names the service."""

    processing_service_name: Name | None = None
    pipelines: list[PipelineConfig] = Field(
        default_factory=list, max_length=MAX_PIPELINES_PER_REGISTRATION
    )
    client_info: ClientInfo | None = None


# -- tasks ------------------------------------------------------------------------------------
class TasksRequest(_Wire):
    batch_size: int = Field(ge=1, le=MAX_ID)
    client_info: ClientInfo | None = None


# -- results ----------------------------------------------------------------------------------
class AlgorithmReference(_Wire):
    name: Name
    key: AlgorithmKey


class Classification(_Wire):
    classification: Label
    labels: list[str] | None = Field(default=None, max_length=MAX_CATEGORIES)
    scores: list[Score] = Field(default_factory=list, max_length=MAX_CATEGORIES)
    logits: list[float] | None = Field(default=None, max_length=MAX_CATEGORIES)
    features: list[float] | None = Field(default=None, max_length=MAX_FEATURES)
    ood_score: float | None = None
    inference_time: Seconds | None = None
    algorithm: AlgorithmReference
    terminal: bool = True
    timestamp: datetime | None = None

    def score(self) -> float:
        """The score of the chosen label: its entry in `scores` when `labels` names it,
        else the highest score (the upstream's rule); 1.0 when no scores were sent."""
        if self.labels and self.classification in self.labels:
            index = self.labels.index(self.classification)
            if index < len(self.scores):
                return self.scores[index]
        return max(self.scores, default=1.0)


class Detection(_Wire):
    source_image_id: ImageId
    bbox: BoundingBox
    inference_time: Seconds | None = None
    algorithm: AlgorithmReference
    timestamp: datetime | None = None
    crop_image_url: Url | None = None
    classifications: list[Classification] = Field(
        default_factory=list, max_length=MAX_CLASSIFICATIONS_PER_DETECTION
    )


class SourceImage(_Wire):
    id: ImageId
    url: Url | None = None


class PipelineResults(_Wire):
    """One image's detections. `source_images` holds exactly that image (one task, one
    image); `algorithms`, `deployments`, `config` and `errors` are accepted and unused."""

    pipeline: Slug
    algorithms: dict[str, Any] = Field(default_factory=dict)
    total_time: Seconds | None = None
    source_images: list[SourceImage] = Field(min_length=1, max_length=1)
    detections: list[Detection] = Field(max_length=MAX_DETECTIONS_PER_IMAGE)

    @property
    def image_id(self) -> int:
        return self.source_images[0].id

    def algorithm_keys(self) -> set[str]:
        keys = {d.algorithm.key for d in self.detections}
        keys.update(c.algorithm.key for d in self.detections for c in d.classifications)
        return keys


class ResultError(_Wire):
    """An image the service could not process. `image_id` is optional upstream; here it
    is required, since it is the only way to know which image failed."""

    error: ErrorText
    image_id: ImageId


class TaskResultEnvelope(_Wire):
    reply_subject: ReplySubject
    result: dict[str, Any]


class ResultsPost(_Wire):
    results: list[TaskResultEnvelope] = Field(max_length=MAX_RESULTS_PER_POST)
    client_info: ClientInfo | None = None


class TaskResult(BaseModel):
    reply_subject: str
    result: PipelineResults | ResultError

    @property
    def image_id(self) -> int:
        return self.result.image_id


# -- log lines --------------------------------------------------------------------------------
MAX_LOG_LINES_PER_POST = 100
MAX_LOG_MESSAGE_LENGTH = 10_000  # characters
LOG_LEVELS = {"DEBUG": 10, "INFO": 20, "WARN": 30, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}


def _log_level(value: object) -> int:
    """A level as a name ("INFO", any case) or a number from 0 to 50."""
    if isinstance(value, str) and value.upper() in LOG_LEVELS:
        return LOG_LEVELS[value.upper()]
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 50:
        return value
    raise ValueError(f"must be one of {', '.join(LOG_LEVELS)} or a number from 0 to 50")


LogLevel = Annotated[int, BeforeValidator(_log_level)]
LogMessage = Annotated[
    str, Field(min_length=1, max_length=MAX_LOG_MESSAGE_LENGTH), AfterValidator(multi_line_text)
]


class LogLine(_Wire):
    level: LogLevel = 20
    message: LogMessage
    timestamp: datetime | None = None  # when the service logged it; kept in the context
    context: ClientInfo | None = None


class LogPost(_Wire):
    logs: list[LogLine] = Field(min_length=1, max_length=MAX_LOG_LINES_PER_POST)


def parse_results(body: object) -> tuple[list[TaskResult], list[dict[str, str]]]:
    """The results of a POST (`{"results": [...]}` or a bare list), or the errors naming
    each bad field as `results.3.result.detections.0.bbox.x2`."""
    if isinstance(body, list):
        body = {"results": body}
    try:
        post = ResultsPost.model_validate(body)
    except ValidationError as exc:
        return [], describe(exc)
    parsed, errors = [], []
    for i, envelope in enumerate(post.results):
        item, item_errors = parse_result(i, envelope.model_dump())
        errors.extend(item_errors)
        if item is not None:
            parsed.append(item)
    return parsed, errors


def parse_result(index: int, raw: object) -> tuple[TaskResult | None, list[dict[str, str]]]:
    """One entry of a post's `results`, or the errors naming its bad fields."""
    try:
        envelope = TaskResultEnvelope.model_validate(raw)
    except ValidationError as exc:
        return None, describe(exc, prefix=("results", index))
    shape = ResultError if "error" in envelope.result else PipelineResults
    try:
        result = shape.model_validate(envelope.result)
    except ValidationError as exc:
        return None, describe(exc, prefix=("results", index, "result"))
    return TaskResult(reply_subject=envelope.reply_subject, result=result), []


def validate_client_info(raw: object) -> list[dict[str, str]]:
    """The errors of a post's `client_info` ([] if it is acceptable)."""
    try:
        ResultsPost.model_validate({"results": [], "client_info": raw})
    except ValidationError as exc:
        return describe(exc)
    return []


def to_internal(item: TaskResult) -> PipelineResult:
    """Our own result payload for one accepted protocol result."""
    result = item.result
    if isinstance(result, ResultError):
        return PipelineResult(
            image_id=result.image_id, reply_subject=item.reply_subject, error=result.error
        )
    return PipelineResult(
        image_id=result.image_id,
        reply_subject=item.reply_subject,
        detections=[
            DetectionResult(
                bbox=detection.bbox,
                algorithm=detection.algorithm.key,
                classifications=[
                    ClassificationResult(
                        label=c.classification, score=c.score(), algorithm=c.algorithm.key
                    )
                    for c in detection.classifications
                ],
            )
            for detection in result.detections
        ],
    )


def describe(exc: ValidationError, prefix: tuple = ()) -> list[dict[str, str]]:
    """Flatten pydantic errors to [{"field": "results.0.bbox.x2", "message": "..."}]."""
    return [
        {
            "field": ".".join(str(part) for part in (*prefix, *error["loc"])) or "(body)",
            "message": error["msg"],
        }
        for error in exc.errors()
    ]
