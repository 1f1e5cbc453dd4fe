"""Resolver plumbing shared by every route module: the one error shape, body limits, OpenAPI/Swagger."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable

import pydantic_core
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestUnsupportedContentType, RequestValidationError

from maas.api.openapi import document_json, swagger_html
from maas.errors import (
    ApiError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    internal_error_body,
)

JSON = "application/json"
DOCS_PATH = "/docs"
OPENAPI_PATH = "/openapi.json"


def documented(model: type, description: str) -> dict:
    """An OpenAPI response entry (for a route's ``responses``) whose JSON body is ``model``."""
    return {"description": description, "content": {JSON: {"model": model}}}


def dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def error_response(err: ApiError) -> Response:
    return Response(status_code=err.status, content_type=JSON, body=dumps(err.body()))


def check_body_size(body: str, max_body_bytes: int) -> None:
    """413 in the error shape when the body's UTF-8 size is over the limit."""
    # len(str) <= UTF-8 bytes <= 4 * len(str): encode only when the cheap bounds do not decide.
    if len(body) > max_body_bytes or (4 * len(body) > max_body_bytes and len(body.encode("utf-8")) > max_body_bytes):
        raise PayloadTooLarge(f"Request body exceeds the {max_body_bytes}-byte limit.")


def invalid_json(detail: str) -> ApiError:
    return InvalidRequest(
        f"Request body is not valid JSON ({detail})." if detail else "Request body is not valid JSON.",
        code="invalid_json",
    )


def validation_error(errors: list[dict]) -> ApiError:
    """The 400 for a list of pydantic errors (from Powertools' validation or a direct model_validate_json)."""
    if errors and errors[0].get("type") == "json_invalid":
        return invalid_json(errors[0].get("ctx", {}).get("error", ""))
    code = "unsupported_parameter" if errors and errors[0].get("type") == "extra_forbidden" else "invalid_request"
    return InvalidRequest(describe_validation_errors(errors), code=code)


def body_deserializer(max_body_bytes: int) -> Callable[[str], object]:
    """Parse a JSON body, refusing oversized bodies (413) and malformed JSON (400) in the error shape."""

    def parse(body: str):
        check_body_size(body, max_body_bytes)
        try:
            # pydantic's parser, so the message matches the hot path's model_validate_json exactly
            return pydantic_core.from_json(body)
        except ValueError as exc:
            raise invalid_json(str(exc)) from None

    return parse


_TYPE_TAG = re.compile(r"^(str|int|float|bool|none|list\[.*\]|dict\[.*\]|tuple\[.*\]|function-.*)$")


def _field(loc) -> tuple[str, list[str]]:
    """Render a pydantic error location as `input[1]`; return the union branch tags it went through."""
    name, tags = "", []
    for part in loc:
        if part == "body":
            continue
        if isinstance(part, int):
            name += f"[{part}]"
        elif _TYPE_TAG.match(part):
            tags.append(part)
        else:
            name += f".{part}" if name else part
    return name, tags


def describe_validation_errors(errors: list[dict]) -> str:
    """One readable sentence per offending parameter. Errors from the branches of a union are merged:
    the most specific one wins (`'input[1]': ...`), or, if none is deeper, 'expected A or B'."""
    groups: dict[str, list[tuple[str, list[str], dict]]] = {}
    for err in errors:
        name, tags = _field(err.get("loc", ()))
        groups.setdefault(name.split("[")[0].split(".")[0], []).append((name, tags, err))
    sentences = []
    for items in list(groups.values())[:5]:
        name, tags, err = max(items, key=lambda item: len(item[0]))
        kind, msg = err.get("type", ""), err.get("msg", "invalid value").removeprefix("Value error, ")
        if kind == "extra_forbidden":
            sentences.append(f"Unsupported parameter: '{name}'.")
        elif kind == "missing":
            sentences.append(f"Missing required parameter: '{name}'.")
        elif len(items) > 1 and len({n for n, _, _ in items}) == 1 and all(t for _, t, _ in items):
            expected = " or ".join(dict.fromkeys(t[0] for _, t, _ in items))
            sentences.append(f"'{name}' has the wrong type: expected {expected}.")
        else:
            sentences.append(f"'{name}': {msg}." if name else f"{msg}.")
    return " ".join(sentences) or "Invalid request."


def allowed_methods(app: APIGatewayRestResolver, path: str) -> list[str]:
    """Methods that have a route for ``path`` (for 405 with Allow). Reads the resolver's route table,
    which Powertools keeps private; if that changes, this returns [] and the caller answers 404."""
    routes = list(getattr(app, "_static_routes", [])) + list(getattr(app, "_dynamic_routes", []))
    return sorted({r.method for r in routes if getattr(r, "rule", None) is not None and r.rule.match(path)})


def create_resolver(max_body_bytes: int, logger: logging.Logger) -> APIGatewayRestResolver:
    """An API Gateway REST resolver with validation, the error shape for every failure, and the whole API's
    OpenAPI document and Swagger UI (maas.api.openapi: whichever function API Gateway sends them to)."""
    app = APIGatewayRestResolver(
        enable_validation=True, serializer=dumps, json_body_deserializer=body_deserializer(max_body_bytes)
    )

    @app.get(OPENAPI_PATH, include_in_schema=False)
    def _openapi():
        return Response(status_code=200, content_type=JSON, body=document_json(app.current_event.raw_event))

    @app.get(DOCS_PATH, include_in_schema=False)
    def _docs():
        return Response(status_code=200, content_type="text/html", body=swagger_html(app.current_event.raw_event))

    @app.exception_handler(ApiError)
    def _api_error(err: ApiError):
        logger.info("request refused", extra={"status": err.status, "code": err.code})
        return error_response(err)

    @app.exception_handler(RequestValidationError)
    def _validation(err: RequestValidationError):
        return error_response(validation_error(err.errors()))

    @app.not_found
    def _not_found(_: NotFoundError):
        event = app.current_event
        allowed = allowed_methods(app, event.path)
        if allowed:
            err = MethodNotAllowed(f"{event.http_method} is not allowed on {event.path}; use {', '.join(allowed)}.")
            response = error_response(err)
            response.headers["Allow"] = ", ".join(allowed)
            return response
        return error_response(NotFound(f"No route for {event.http_method} {event.path}.", code="route_not_found"))

    @app.exception_handler(RequestUnsupportedContentType)
    def _content_type(_: RequestUnsupportedContentType):
        return error_response(UnsupportedMediaType("Send the request body as JSON (Content-Type: application/json)."))

    @app.exception_handler(Exception)
    def _unexpected(err: Exception):
        logger.exception("unhandled error")
        return Response(status_code=500, content_type=JSON, body=dumps(internal_error_body()))

    return app
