"""Checks that the served OpenAPI document describes a routed method (used by the unit and infra tests)."""

from __future__ import annotations

import re

ERROR_SCHEMA = {"$ref": "#/components/schemas/ErrorResponse"}


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


def assert_documented(doc: dict, method: str, path: str, public: bool) -> None:
    op = operation(doc, method, path)
    assert op is not None, f"{method} {path} is routed but not in /openapi.json"
    if method == "POST":
        assert json_schema(op.get("requestBody", {})), f"{method} {path}: no request body schema"
    ok = [json_schema(r) for status, r in op["responses"].items() if status.startswith("2")]
    assert ok and all(ok), f"{method} {path}: no JSON schema for its success response"
    assert (op.get("security") == []) == public, f"{method} {path}: public={public} but documented otherwise"
    # Every status it can answer: the gateway's behind the authorizer, the body refusals with a body, 404 where a
    # path parameter names something; every error in the one error body.
    expected = set() if public else {"401", "403", "429"}
    if method == "POST":
        expected |= {"400", "413", "415"}
    if "{" in path:
        expected.add("404")
    missing = expected - set(op["responses"])
    assert not missing, f"{method} {path}: statuses {sorted(missing)} not documented"
    for status, response in op["responses"].items():
        if not status.startswith("2"):
            assert json_schema(response) == ERROR_SCHEMA, f"{method} {path}: {status} is not the error body"
