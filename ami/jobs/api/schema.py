"""OpenAPI entries for the streamed log endpoints, which are plain async Django views."""

from __future__ import annotations

FILTERS = [
    ("level", "string", "Minimum level: a name (warning) or a number"),
    ("since", "string", "ISO 8601 datetime: lines at or after it"),
    ("until", "string", "ISO 8601 datetime: lines at or before it"),
    ("q", "string", "Text the message contains, from a word's start (case-insensitive)"),
    ("image", "integer", "Lines about this image (context `image_id`)"),
    ("processing_service", "integer", "Lines from this processing service"),
    ("worker", "string", "Lines from this worker (context `worker`)"),
    ("stage", "string", "Lines of this stage (context `stage`)"),
]


def _parameter(name: str, kind: str, description: str, where: str = "query") -> dict:
    return {"name": name, "in": where, "schema": {"type": kind}, "description": description}


def _operation(summary: str, extra: list[dict], content: dict) -> dict:
    return {
        "get": {
            "operationId": summary.lower().replace(" ", "_"),
            "summary": summary,
            "tags": ["jobs"],
            "parameters": [
                {**_parameter("id", "integer", "Job id", "path"), "required": True},
                *extra,
                *(_parameter(*f) for f in FILTERS),
            ],
            "responses": {
                "200": {"description": summary, "content": content},
                "400": {"description": "A bad parameter, named in the body"},
                "403": {"description": "Not signed in"},
                "404": {"description": "No such job in your projects"},
            },
        }
    }


def add_streamed_log_paths(result: dict, generator, request, public) -> dict:
    """drf-spectacular postprocessing hook: document `logs/stream` and `logs/download`."""
    text = {"schema": {"type": "string"}}
    result["paths"]["/api/jobs/{id}/logs/stream"] = _operation(
        "Job log stream",
        [
            _parameter("after", "string", "Start after this cursor (a line's `cursor`)"),
            _parameter("tail", "integer", "History lines first (default 200, max 5000)"),
            _parameter("Last-Event-ID", "string", "Resume after this event id", "header"),
        ],
        {"text/event-stream": text},
    )
    result["paths"]["/api/jobs/{id}/logs/download"] = _operation(
        "Job log download",
        [
            {
                **_parameter("format", "string", "text or ndjson"),
                "schema": {"enum": ["text", "ndjson"]},
            }
        ],
        {"text/plain": text, "application/x-ndjson": text},
    )
    return result
