"""Checks that the served OpenAPI document describes a routed method (used by the unit and infra tests)."""

from __future__ import annotations

import re


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
