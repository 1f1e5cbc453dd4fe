"""Resolver plumbing shared by every route module: the one error shape, body limits, OpenAPI/Swagger."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pydantic_core
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestUnsupportedContentType, RequestValidationError

from maas import __version__
from maas.api.bodies import (  # noqa: F401  (re-exported: the route modules import them from here)
    check_body_size,
    describe_validation_errors,
    dumps,
    invalid_json,
    validation_error,
)
from maas.errors import (
    ApiError,
    MethodNotAllowed,
    NotFound,
    UnsupportedMediaType,
    internal_error_body,
)

JSON = "application/json"
DOCS_PATH = "/docs"
DESCRIPTION = (
    "Compressed ONNX models as metered, pay-per-call APIs. Every error has the shape "
    '{"error": {"message", "type", "code"}}.'
)


def error_response(err: ApiError) -> Response:
    return Response(status_code=err.status, content_type=JSON, body=dumps(err.body()))


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


def allowed_methods(app: APIGatewayRestResolver, path: str) -> list[str]:
    """Methods that have a route for ``path`` (for 405 with Allow). Reads the resolver's route table,
    which Powertools keeps private; if that changes, this returns [] and the caller answers 404."""
    routes = list(getattr(app, "_static_routes", [])) + list(getattr(app, "_dynamic_routes", []))
    return sorted({r.method for r in routes if getattr(r, "rule", None) is not None and r.rule.match(path)})


def openapi_document(app: APIGatewayRestResolver, title: str) -> str:
    """The OpenAPI 3.1 document generated from the routes' pydantic models."""
    return app.get_openapi_json_schema(title=title, version=__version__, description=DESCRIPTION)


def create_resolver(max_body_bytes: int, logger: logging.Logger, title: str) -> APIGatewayRestResolver:
    """An API Gateway REST resolver with validation, the error shape for every failure, and Swagger UI."""
    app = APIGatewayRestResolver(
        enable_validation=True, serializer=dumps, json_body_deserializer=body_deserializer(max_body_bytes)
    )
    app.enable_swagger(path=DOCS_PATH, title=title, version=__version__, description=DESCRIPTION)

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
