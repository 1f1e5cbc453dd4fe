"""Resolver plumbing shared by every route module: proxy results, the one error shape, body limits, the documented
error responses, OpenAPI/Swagger. Route modules share pieces through here (and maas.api.metered), never each other."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from dataclasses import dataclass

import pydantic_core
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestUnsupportedContentType, RequestValidationError

from maas.api.openapi import document_json, swagger_html
from maas.api.routes import is_kserve_path
from maas.bodies import (  # noqa: F401  (re-exported: the route modules import them from here)
    EMPTY_BODY,
    check_body_size,
    check_strict_json,
    describe_validation_errors,
    dumps,
    header,
    invalid_json,
    require_identity_encoding,
    utf8_text,
    validation_error,
)
from maas.errors import (
    INTERNAL_ERROR,
    ApiError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    UnsupportedMediaType,
    internal_error_body,
    kserve_headers,
)
from maas.schemas.errors import ErrorResponse, KServeErrorResponse

JSON = "application/json"
DOCS_PATH = "/docs"
OPENAPI_PATH = "/openapi.json"


def documented(model: type, description: str) -> dict:
    """An OpenAPI response entry (for a route's ``responses``) whose JSON body is ``model``."""
    return {"description": description, "content": {JSON: {"model": model}}}


def error_docs(*statuses: tuple[int, str]) -> dict:
    """OpenAPI response entries for (status, description) pairs, each with the one error body."""
    return {status: documented(ErrorResponse, text) for status, text in statuses}


# The errors of a model route (embeddings, rerank, v2): bad body, unknown model, too large, not loaded.
ERRORS = error_docs(
    (400, "Invalid request"), (404, "Unknown model"), (413, "Body too large"), (503, "Model unavailable")
)


@dataclass(frozen=True)
class BinaryBody:
    """A response body of bytes (sent base64-encoded with isBase64Encoded, as API Gateway expects them)."""

    data: bytes
    content_type: str
    headers: dict[str, str]


def binary_result(status: int, body: BinaryBody, headers: dict[str, str] | None = None) -> dict:
    """A REST proxy integration result carrying bytes: API Gateway decodes the base64 for the client (the API's
    binary media types, infra/api.py, make it do so)."""
    multi = {"Content-Type": [body.content_type]}
    for key, value in {**body.headers, **(headers or {})}.items():
        multi[key] = [value]
    encoded = base64.b64encode(body.data).decode("ascii")
    return {"statusCode": status, "multiValueHeaders": multi, "body": encoded, "isBase64Encoded": True}


def kserve_docs(responses: dict) -> dict:
    """``responses`` (error entries such as ERRORS) with KServe v2's error body in place of the API's."""
    return {status: documented(KServeErrorResponse, entry["description"]) for status, entry in responses.items()}


def proxy_result(status: int, body: str, headers: dict[str, str] | None = None) -> dict:
    """A REST proxy integration result in the shape the resolver produces."""
    multi = {"Content-Type": [JSON]}
    for key, value in (headers or {}).items():
        multi[key] = [value]
    return {"statusCode": status, "multiValueHeaders": multi, "body": body, "isBase64Encoded": False}


def register_post(
    app: APIGatewayRestResolver,
    path: str,
    body: type,
    answer: Callable[[dict], dict],
    *,
    name: str,
    summary: str,
    response: type,
    description: str,
    errors: dict | None = None,
    limits: str | None = None,
) -> None:
    """Register a metered POST route in ``app`` for routing (405 on other methods) and the OpenAPI document; the
    function's ``__call__`` dispatches the route to ``answer(event)`` without the resolver (so that every refusal,
    body validation included, is counted), and this registration answers the same way if it is reached.
    ``limits``: the operation's description, the limits the route enforces (maas.api.limits)."""
    from typing import Annotated

    from aws_lambda_powertools.event_handler.openapi.params import Body

    def route(request):
        return resolver_response(answer(app.current_event.raw_event))

    # Powertools reads the request model from the annotation (and the operation id from the name)
    route.__annotations__ = {"request": Annotated[body, Body()]}
    route.__name__ = route.__qualname__ = name
    responses = {200: {"description": description, "content": {JSON: {"model": response}}}, **(errors or ERRORS)}
    app.post(path, summary=summary, description=limits, responses=responses)(route)


def resolver_response(result: dict) -> Response:
    """A proxy result as the resolver's Response (for a route the resolver registers but answers directly)."""
    headers = {k: v[0] for k, v in result["multiValueHeaders"].items() if k != "Content-Type"}
    return Response(result["statusCode"], content_type=JSON, body=result["body"], headers=headers)


def error_response(err: ApiError, kserve: bool = False) -> Response:
    """``err`` as the resolver's Response: OpenAI's error shape, or KServe v2's (``kserve``)."""
    headers = {**err.headers, **kserve_headers(err.code)} if kserve else dict(err.headers)
    return Response(status_code=err.status, content_type=JSON, body=dumps(err.body(kserve)), headers=headers)


def error_result(err: ApiError, headers: dict[str, str] | None = None, *, kserve: bool = False) -> dict:
    """``err`` as a proxy result, with its own headers (e.g. Retry-After) or ``headers``; in OpenAI's error shape,
    or KServe v2's (``kserve``: the code in a header)."""
    headers = dict(err.headers) if headers is None else dict(headers)
    if kserve:
        headers.update(kserve_headers(err.code))
    return proxy_result(err.status, dumps(err.body(kserve)), headers)


def internal_error_result(kserve: bool = False) -> dict:
    """The 500 proxy result: the failure is logged by the caller, never sent."""
    return proxy_result(500, dumps(internal_error_body(kserve)), kserve_headers(INTERNAL_ERROR[2]) if kserve else None)


def body_deserializer(max_body_bytes: int, event: Callable[[], dict]) -> Callable[[str], object]:
    """Parse a JSON body as maas.bodies.parse_json does: compressed (415), oversized (413), empty, malformed or
    ambiguous JSON (400) in the error shape. ``event``: the current request's API Gateway event."""

    def parse(body: str):
        require_identity_encoding(header(event(), "content-encoding"))
        check_body_size(body, max_body_bytes)
        if not body.strip():
            raise InvalidRequest(EMPTY_BODY)
        try:
            # pydantic's parser, so the message matches the hot path's model_validate_json exactly
            parsed = pydantic_core.from_json(body)
        except ValueError as exc:
            raise invalid_json(str(exc)) from None
        check_strict_json(body)
        return parsed

    return parse


def allowed_methods(app: APIGatewayRestResolver, path: str) -> list[str]:
    """Methods that have a route for ``path`` (for 405 with Allow). Reads the resolver's route table,
    which Powertools keeps private; if that changes, this returns [] and the caller answers 404."""
    routes = list(getattr(app, "_static_routes", [])) + list(getattr(app, "_dynamic_routes", []))
    return sorted({r.method for r in routes if getattr(r, "rule", None) is not None and r.rule.match(path)})


def create_resolver(max_body_bytes: int, logger: logging.Logger) -> APIGatewayRestResolver:
    """An API Gateway REST resolver with validation, the error shape for every failure, and the whole API's
    OpenAPI document and Swagger UI (maas.api.openapi: whichever function API Gateway sends them to)."""
    made: list[APIGatewayRestResolver] = []  # the parser reads the request's Content-Encoding from the resolver
    app = APIGatewayRestResolver(
        enable_validation=True,
        serializer=dumps,
        json_body_deserializer=body_deserializer(max_body_bytes, lambda: made[0].current_event.raw_event),
    )
    made.append(app)

    @app.get(OPENAPI_PATH, include_in_schema=False)
    def _openapi():
        return Response(status_code=200, content_type=JSON, body=document_json(app.current_event.raw_event))

    @app.get(DOCS_PATH, include_in_schema=False)
    def _docs():
        return Response(status_code=200, content_type="text/html", body=swagger_html(app.current_event.raw_event))

    def refuse(err: ApiError) -> Response:
        # KServe v2 routes answer in that protocol's error shape, every other route in OpenAI's
        return error_response(err, kserve=is_kserve_path(app.current_event.path))

    @app.exception_handler(ApiError)
    def _api_error(err: ApiError):
        logger.info("request refused", extra={"status": err.status, "code": err.code})
        return refuse(err)

    @app.exception_handler(RequestValidationError)
    def _validation(err: RequestValidationError):
        return refuse(validation_error(err.errors()))

    @app.not_found
    def _not_found(_: NotFoundError):
        event = app.current_event
        allowed = allowed_methods(app, event.path)
        if allowed:
            err = MethodNotAllowed(f"{event.http_method} is not allowed on {event.path}; use {', '.join(allowed)}.")
            response = refuse(err)
            response.headers["Allow"] = ", ".join(allowed)
            return response
        return refuse(NotFound(f"No route for {event.http_method} {event.path}.", code="route_not_found"))

    @app.exception_handler(UnicodeDecodeError)
    def _not_utf8(_: UnicodeDecodeError):
        # Powertools decodes a base64 (binary) body as UTF-8 before validation: bytes that are not text are the
        # client's error, not a 500 (the same 400 as maas.bodies.utf8_text's).
        try:
            require_identity_encoding(header(app.current_event.raw_event, "content-encoding"))
            utf8_text(base64.b64decode(app.current_event.body or ""))
        except ApiError as err:
            return refuse(err)
        return refuse(invalid_json("the body is not UTF-8 text"))

    @app.exception_handler(RequestUnsupportedContentType)
    def _content_type(_: RequestUnsupportedContentType):
        return refuse(UnsupportedMediaType("Send the request body as JSON (Content-Type: application/json)."))

    @app.exception_handler(Exception)
    def _unexpected(err: Exception):
        logger.exception("unhandled error")
        return resolver_response(internal_error_result(is_kserve_path(app.current_event.path)))

    return app
