"""Every GET route under /api/ and its query parameters, from the OpenAPI schema and URLconf.

Derived, not listed, so a new endpoint or parameter is fuzzed without touching the tests.
"""

from __future__ import annotations

import re

from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.generators import SchemaGenerator

API_PREFIX = "/api/"
REGEX_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")  # a router's `(?P<pk>[^/.]+)`
CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")  # a path()'s `<int:pk>`
FORMAT_SUFFIX = "{format}"  # DRF's `.json` variants of each route: same views


def schema() -> dict:
    """The OpenAPI schema the server publishes at /api/schema/."""
    return SchemaGenerator().get_schema(request=None, public=True)


def schema_get_routes(openapi: dict) -> dict[str, list[str]]:
    """{"/api/jobs/{id}/logs/": ["after", "level", ...]} for every GET operation."""
    routes = {}
    for path, operations in openapi["paths"].items():
        if "get" in operations:
            parameters = operations["get"].get("parameters", [])
            routes[path] = sorted({p["name"] for p in parameters if p["in"] == "query"})
    return routes


def _walk(patterns, prefix: str = "") -> list[str]:
    routes = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            routes.extend(_walk(pattern.url_patterns, prefix + str(pattern.pattern)))
        elif isinstance(pattern, URLPattern):
            routes.append(prefix + str(pattern.pattern))
    return routes


def urlconf_api_routes() -> list[str]:
    """Every URLconf route under /api/ as a template: `/api/jobs/{pk}/logs/`."""
    routes = []
    for route in _walk(get_resolver().url_patterns):
        text = REGEX_GROUP.sub(r"{\1}", route)
        text = CONVERTER.sub(r"{\1}", text)
        text = "/" + text.replace("^", "").replace("$", "").replace("/?", "/").replace("\\", "")
        if text.startswith(API_PREFIX) and FORMAT_SUFFIX not in text:
            routes.append(text)
    return routes


def normalise(route: str) -> str:
    """A route without its trailing slash and with anonymous parameters, for matching."""
    return re.sub(r"\{\w+\}", "{}", route).rstrip("/")


def get_routes() -> dict[str, list[str]]:
    """GET routes with their query parameters: the schema's, plus URLconf routes it lacks.

    A route only the URLconf knows gets every query parameter name the schema uses
    anywhere (its own are unknown), so it is fuzzed too.
    """
    routes = schema_get_routes(schema())
    known = {normalise(route) for route in routes}
    every_name = sorted({name for names in routes.values() for name in names})
    for route in urlconf_api_routes():
        if normalise(route) in known:
            continue
        routes[route] = every_name
        known.add(normalise(route))
    return routes
