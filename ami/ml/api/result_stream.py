"""A result post parsed as a stream: one result at a time, never the whole body in memory.

Real clients post batches of 100+ MB (a classification's scores and logits for thousands of
taxa, per detection). The body is read from the request stream with `ijson`; each result is
validated as soon as it is complete, converted to our small internal payload and staged in
a spooled temporary file, and only a summary (image, reply subject, pipeline, algorithm
keys) stays in memory. The caller checks the summaries against the job and queues the
staged payloads only once the whole body was read and found valid, in chunks read back
from the file one at a time (`StagedBatch.chunks`): a bad batch queues nothing.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import ijson

from ami.ml.api import wire

MAX_DEPTH = 64  # JSON nesting; deeper is no result of the protocol
MAX_ERRORS = 100  # a post with more bad fields is answered after the first ones
SPOOL_IN_MEMORY = 1024 * 1024  # bytes of staged payloads kept in memory before a file
# Bytes read from the request at a time. Small on purpose: the C parser handles a whole read
# before our depth check sees its events, and its cost is quadratic in the nesting within
# one read (64 KB of "[" took 25 s; 8 KB takes milliseconds), at no cost to a 150 MB post.
READ_CHUNK = 8 * 1024

# A `\\uD800`-`\\uDFFF` escape (the backslash run decides whether it is one), with the low
# half that may follow a high one. The C parser would turn a lone one into "?".
_SURROGATE_ESCAPE = re.compile(
    rb"(\\+)u([dD][89a-fA-F][0-9a-fA-F]{2})(\\u[dD][c-fC-F][0-9a-fA-F]{2})?"
)
_NUL_ESCAPE = rb"\u0000"
_BACKSLASH = 0x5C
_LONGEST_ESCAPE = 16  # bytes: a pair of escapes and then some
_STARTS = ("start_map", "start_array")
_ENDS = ("end_map", "end_array")


class BodyError(Exception):
    """The body is no JSON, or not the post's shape: a 400 naming `field`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass
class ResultSummary:
    """What the job checks need of one result, without its detections."""

    index: int
    reply_subject: str
    image_id: int
    succeeded: bool
    pipeline: str | None
    algorithm_fields: dict[str, str]  # algorithm key -> the first field naming it
    foreign_detections: list[int]  # detections naming another image (the first few)


@dataclass
class StagedBatch:
    """A parsed post: summaries, staged internal payloads, or the errors of its fields."""

    summaries: list[ResultSummary] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    payloads: IO[str] = field(default_factory=lambda: _spool())

    def chunks(self, max_results: int, max_bytes: int) -> Iterator[list[dict]]:
        """The internal payloads in the post's order, in lists of at most `max_results`
        results and about `max_bytes` of JSON (one result bigger than that is a list alone):
        one list per result task."""
        chunk: list[dict] = []
        size = 0
        self.payloads.seek(0)
        for line in self.payloads:
            if chunk and (len(chunk) >= max_results or size + len(line) > max_bytes):
                yield chunk
                chunk, size = [], 0
            chunk.append(json.loads(line))
            size += len(line)
        if chunk:
            yield chunk

    def close(self) -> None:
        self.payloads.close()


def _spool() -> IO[str]:
    """The staging file; `StagedBatch.close` closes it (the view does, in a `finally`)."""
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY, mode="w+", encoding="utf-8")  # noqa: SIM115


def stage(stream: IO[bytes] | None) -> StagedBatch:
    """Parse a post from `stream` (None: an empty body), result by result."""
    batch = StagedBatch()
    try:
        for kind, index, value in _values(stream):
            if kind == "client_info":
                batch.errors.extend(wire.validate_client_info(value))
            elif index >= wire.MAX_RESULTS_PER_POST:
                message = f"List should have at most {wire.MAX_RESULTS_PER_POST} items"
                batch.errors.append({"field": "results", "message": message})
                break
            else:
                _stage_one(batch, index, value)
            if len(batch.errors) >= MAX_ERRORS:
                break
    except BodyError as exc:
        batch.errors.append({"field": exc.field, "message": exc.message})
    except (ijson.JSONError, UnicodeDecodeError) as exc:
        batch.errors.append({"field": "(body)", "message": f"JSON parse error: {exc}"[:300]})
    return batch


def _stage_one(batch: StagedBatch, index: int, raw: Any) -> None:
    item, errors = wire.parse_result(index, raw)
    if item is None:
        batch.errors.extend(errors)
        return
    batch.summaries.append(summarize(index, item))
    if not batch.errors:
        payload = wire.to_internal(item).model_dump(mode="json")
        batch.payloads.write(json.dumps(payload) + "\n")  # the payload holds its reply subject


def summarize(index: int, item: wire.TaskResult) -> ResultSummary:
    """The summary of one valid result."""
    result = item.result
    succeeded = isinstance(result, wire.PipelineResults)
    fields: dict[str, str] = {}
    foreign: list[int] = []
    if succeeded:
        for j, detection in enumerate(result.detections):
            where = f"results.{index}.result.detections.{j}"
            if detection.source_image_id != item.image_id and len(foreign) < MAX_ERRORS:
                foreign.append(j)
            fields.setdefault(detection.algorithm.key, f"{where}.algorithm.key")
            for k, classification in enumerate(detection.classifications):
                key = classification.algorithm.key
                fields.setdefault(key, f"{where}.classifications.{k}.algorithm.key")
    return ResultSummary(
        index=index,
        reply_subject=item.reply_subject,
        image_id=item.image_id,
        succeeded=succeeded,
        pipeline=result.pipeline if succeeded else None,
        algorithm_fields=fields,
        foreign_detections=foreign,
    )


class SurrogateGuard:
    """A byte stream whose lone surrogate escapes read as `\\u0000`.

    The C parser (yajl) turns an unpaired `\\ud800` into "?", silently; NUL is refused by
    every text field we read, so the field holding a lone surrogate is still a 400 that
    names it. Escaped pairs (an emoji as `ensure_ascii` writes it) pass unchanged. A
    backslash run is never split between reads, so its parity (escape or not) is known.
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.carry = b""
        self.ended = False

    def read(self, size: int = -1) -> bytes:
        """The next bytes (any amount, a whole chunk at most); b"" at the end."""
        if size == 0:  # ijson asks `read(0)` for the type of the stream
            return b""
        while not self.ended:
            chunk = self.stream.read(READ_CHUNK)
            if not chunk:
                self.ended = True
                break
            buffer = self.carry + chunk
            cut = _safe_cut(buffer)
            self.carry = buffer[cut:]
            if cut:
                return _SURROGATE_ESCAPE.sub(_fix_surrogates, buffer[:cut])
        rest, self.carry = self.carry, b""
        return _SURROGATE_ESCAPE.sub(_fix_surrogates, rest)


def _safe_cut(buffer: bytes) -> int:
    """Where to cut `buffer` so that no escape, backslash run, or high surrogate whose low
    half may still come, straddles the cut (`buffer` starts at a run's start)."""
    tail = len(buffer) - _LONGEST_ESCAPE
    at = buffer.find(b"\\", max(0, tail))
    if at < 0:
        at = len(buffer)
    while at > 0 and buffer[at - 1] == _BACKSLASH:
        at -= 1
    for match in _SURROGATE_ESCAPE.finditer(buffer):
        if match.end() > tail:
            return min(at, match.start())
    return at


def _fix_surrogates(match: re.Match[bytes]) -> bytes:
    run, code, low = match.group(1), match.group(2), match.group(3)
    if len(run) % 2 == 0:  # an escaped backslash, then text; a low escape after it is lone
        return run + b"u" + code + (_NUL_ESCAPE if low else b"")
    if int(code, 16) <= 0xDBFF and low:
        return match.group(0)  # a pair
    return run[:-1] + _NUL_ESCAPE + (_NUL_ESCAPE if low else b"")


def _values(stream: IO[bytes] | None) -> Iterator[tuple[str, int, Any]]:
    """("result", index, value) for each entry of the post's results, and ("client_info",
    0, value); the body is `{"results": [...], ...}` or a bare list of results."""
    if stream is None:
        raise BodyError("results", "Field required")
    events = ijson.parse(SurrogateGuard(stream), use_float=True, buf_size=READ_CHUNK)
    first = next(events, None)
    if first is None:
        raise BodyError("results", "Field required")
    _, event, _ = first
    events = _tracked(events, _Path(bare=event == "start_array"))
    if event == "start_array":
        wanted = {"item": "result"}
    elif event == "start_map":
        wanted = {"results.item": "result", "client_info": "client_info"}
    else:
        raise BodyError("(body)", 'must be {"results": [...]} or a list of results')
    depth, index, seen_results, top_key = 1, 0, event == "start_array", None
    builder, built_kind, built_depth = None, None, 0
    for prefix, event, value in events:
        if event in _STARTS:
            depth += 1
            if depth > MAX_DEPTH:
                raise BodyError("(body)", f"JSON nested deeper than {MAX_DEPTH} levels")
        elif event in _ENDS:
            depth -= 1
        if builder is not None:
            builder.event(event, value)
            if event in _ENDS and depth == built_depth - 1:
                yield built_kind, index, builder.value
                index += built_kind == "result"
                builder = None
            continue
        if top_key is not None and prefix == top_key:
            if top_key == "results":
                seen_results = True
                if event != "start_array":
                    raise BodyError("results", "Input should be a valid list")
            top_key = None
        if prefix == "" and event == "map_key":
            top_key = value
            continue
        kind = wanted.get(prefix)
        if kind is None:
            continue
        if event in _STARTS:
            builder, built_kind, built_depth = ijson.ObjectBuilder(), kind, depth
            builder.event(event, value)
        elif event not in _ENDS and event != "map_key":
            yield kind, index, value
            index += kind == "result"
    if not seen_results:
        raise BodyError("results", "Field required")


class _Path:
    """Where the parser is, as the field name a 400 gives (`results.0.result.bbox.x1`)."""

    def __init__(self, bare: bool) -> None:
        self.root = ["results"] if bare else []
        self.stack: list[list] = [["array", -1] if bare else ["map", None]]

    def step(self, event: str, value: Any) -> None:
        top = self.stack[-1] if self.stack else None
        if event == "map_key":
            top[1] = value
            return
        if event in _ENDS:
            self.stack.pop()
            return
        if top and top[0] == "array":
            top[1] += 1
        if event in _STARTS:
            self.stack.append(["array", -1] if event == "start_array" else ["map", None])

    def next_value(self) -> str:
        """The field of the value being parsed (the next element, in an array)."""
        parts = list(self.root)
        for depth, (kind, value) in enumerate(self.stack):
            last = depth == len(self.stack) - 1
            parts.append(str(value + 1 if kind == "array" and last else value))
        return ".".join(parts) or "(body)"


def _tracked(events: Iterator[tuple], path: _Path) -> Iterator[tuple]:
    """The parser's events; a number it cannot hold is a 400 naming its field."""
    try:
        for prefix, event, value in events:
            path.step(event, value)
            yield prefix, event, value
    except ijson.JSONError as exc:
        if "overflow" in str(exc):
            raise BodyError(path.next_value(), "number out of range") from None
        raise
