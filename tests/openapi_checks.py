"""Checks that the served OpenAPI document describes a routed method (used by the unit and infra tests)."""

from __future__ import annotations

import re

# The one error body, and KServe v2's on its routes
ERROR_SCHEMAS = [{"$ref": "#/components/schemas/ErrorResponse"}, {"$ref": "#/components/schemas/KServeErrorResponse"}]


def operation(doc: dict, method: str, path: str) -> dict | None:
    """The operation documenting METHOD PATH; `{x}` segments match whatever the document names them."""
    for template, item in doc["paths"].items():
        pattern = "^" + re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template)) + "$"
        concrete = re.sub(r"\{\w+\}", "x", path)
        if re.match(pattern, concrete) and method.lower() in item:
            return item[method.lower()]
    return None


def json_schema(entry: dict) -> dict | None:
    return entry.get("content", {}).get("application/json", {}).get("schema")


def any_schema(entry: dict) -> dict | None:
    """The JSON body's schema, or else another media type's (a multipart upload, a JSON-lines file)."""
    found = [media.get("schema") for media in entry.get("content", {}).values() if media.get("schema")]
    return json_schema(entry) or (found[0] if found else None)


def assert_documented(doc: dict, method: str, path: str, public: bool) -> None:
    op = operation(doc, method, path)
    assert op is not None, f"{method} {path} is routed but not in /openapi.json"
    if method == "POST":
        assert any_schema(op.get("requestBody", {})), f"{method} {path}: no request body schema"
    ok = [any_schema(r) for status, r in op["responses"].items() if status.startswith("2")]
    assert ok and all(ok), f"{method} {path}: no schema for its success response"
    assert (op.get("security") == []) == public, f"{method} {path}: public={public} but documented otherwise"
    # Every status it can answer: the gateway's behind the authorizer, the body refusals with a body, 404 where a
    # path parameter names something; every error in the one error body.
    expected = set() if public else {"401", "403", "429"}
    if method == "POST":
        expected |= {"400", "413", "415"}
    if any(p.get("in") == "query" for p in op.get("parameters", [])):
        expected.add("400")  # a query parameter of the wrong type or range
    if "{" in path:
        expected.add("404")
    missing = expected - set(op["responses"])
    assert not missing, f"{method} {path}: statuses {sorted(missing)} not documented"
    for status, response in op["responses"].items():
        if status.startswith("3"):  # a redirect: its Location, no body
            assert "content" not in response, f"{method} {path}: {status} with a body"
        elif not status.startswith("2"):
            schema = json_schema(response) or {}
            assert all(s in ERROR_SCHEMAS for s in schema.get("anyOf", [schema])), f"{method} {path}: {status} body"
