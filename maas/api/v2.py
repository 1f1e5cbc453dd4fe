"""Routes of the v2 function: the Open Inference Protocol (KServe v2) REST API for the served package.

    GET  /v2                                   server metadata
    GET  /v2/health/live, /v2/health/ready     liveness; readiness (503 while the model is not loaded)
    GET  /v2/models/{name}[/versions/{v}]      model metadata (tensor names, datatypes, shapes)
    GET  /v2/models/{name}[/versions/{v}]/ready
    POST /v2/models/{name}[/versions/{v}]/infer

`infer` is authenticated and metered like every task route (units: the tokens run, task `v2-infer`); the others
are not billed. Errors are the protocol's `{"error": "<message>"}` (the code in the X-Error-Code header).
The binary tensor data extension
(tritonclient's default) is refused with a 400 that says how to send JSON.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.openapi.params import Body

from maas import __version__
from maas.api import limits
from maas.api.metered import json_parser, metered
from maas.api.openapi import DOCS_ONLY
from maas.api.resolver import ERRORS, JSON, create_resolver, documented, kserve_docs, resolver_response
from maas.errors import InvalidRequest, ServiceUnavailable
from maas.metering.charge import Billing
from maas.schemas.v2 import (
    InferRequest,
    InferResponse,
    Liveness,
    ModelMetadata,
    ModelReadiness,
    Readiness,
    ServerMetadata,
)
from maas.tasks.v2 import BINARY_REFUSAL, V2Service

BINARY_HEADER = "inference-header-content-length"  # the binary tensor data extension's request (Triton's)
# The routes' documented errors, in the protocol's body ({"error": "<message>"}).
V2_ERRORS = kserve_docs(ERRORS)
INFER_PATH = re.compile(r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?/infer$")


class V2Api:
    """The function's API: call it with an API Gateway REST event and a Lambda context."""

    def __init__(self, service: V2Service, billing: Billing, logger: logging.Logger):
        self.service, self.billing, self.logger = service, billing, logger
        self.parse = json_parser(InferRequest, service.settings.max_body_bytes)
        self.app = self._resolver(logger)

    def __call__(self, event: dict, context) -> dict:
        m = INFER_PATH.match(event.get("path") or "")
        if event.get("httpMethod") == "POST" and m:
            return self.post_infer(event, unquote(m["name"]), unquote(m["version"]) if m["version"] else None)
        return self.app.resolve(event, context)

    def _parse(self, event: dict) -> InferRequest:
        headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
        if BINARY_HEADER in headers:
            raise InvalidRequest(BINARY_REFUSAL, code="unsupported")
        return self.parse(event)

    def post_infer(self, event: dict, name: str, version: str | None) -> dict:
        run = lambda request, reserve: self.service.infer(name, request, version, reserve)  # noqa: E731
        return metered(self.billing, event, self._parse, run, logger=self.logger, kserve=True)

    def _resolver(self, logger: logging.Logger) -> APIGatewayRestResolver:
        app = create_resolver(self.service.settings.max_body_bytes, logger)
        service = self.service
        metadata_responses = {
            200: {"description": "Model metadata", "content": {JSON: {"model": ModelMetadata}}},
            404: V2_ERRORS[404],
            503: V2_ERRORS[503],
        }

        @app.get("/v2", summary="Server metadata (KServe v2)")
        def server_metadata() -> ServerMetadata:
            return ServerMetadata(name="maas", version=__version__, extensions=[])

        @app.get("/v2/health/live", summary="Liveness (KServe v2)")
        def live() -> Liveness:
            return Liveness(live=True)

        @app.get(
            "/v2/health/ready",
            summary="Readiness (KServe v2): 503 while the model is not loaded",
            responses={200: documented(Readiness, "Ready"), 503: V2_ERRORS[503]},
        )
        def ready() -> Readiness:
            if not service.ready():
                raise ServiceUnavailable("The model is not loaded yet or failed to load (the reason is logged).")
            return Readiness(ready=True)

        @app.get("/v2/models/<name>", summary="Model metadata (KServe v2)", responses=metadata_responses)
        def model_metadata(name: str):
            return service.metadata(unquote(name))

        @app.get("/v2/models/<name>/versions/<version>", summary="Model version metadata", responses=metadata_responses)
        def version_metadata(name: str, version: str):
            return service.metadata(unquote(name), unquote(version))

        ready_responses = {200: documented(ModelReadiness, "Ready"), 404: V2_ERRORS[404], 503: V2_ERRORS[503]}

        @app.get("/v2/models/<name>/ready", summary="Model readiness (KServe v2)", responses=ready_responses)
        def model_ready(name: str) -> ModelReadiness:
            service.metadata(unquote(name))
            return ModelReadiness(name=service.embeddings.manifest.name, ready=True)

        @app.get(
            "/v2/models/<name>/versions/<version>/ready",
            summary="Model version readiness (KServe v2)",
            responses=ready_responses,
        )
        def version_ready(name: str, version: str) -> ModelReadiness:
            service.metadata(unquote(name), unquote(version))
            return ModelReadiness(name=service.embeddings.manifest.name, ready=True)

        infer_doc = {
            "summary": "Inference on named tensors (KServe v2)",
            "description": limits.V2_INFER,
            "responses": {
                200: {"description": "Output tensors", "content": {JSON: {"model": InferResponse}}},
                **V2_ERRORS,
            },
        }

        # Registered for routing (405 on other methods) and the OpenAPI document; __call__ answers them first.
        @app.post("/v2/models/<name>/infer", **infer_doc)
        def infer(request: Annotated[InferRequest, Body()], name: str):
            return resolver_response(self.post_infer(app.current_event.raw_event, unquote(name), None))

        @app.post("/v2/models/<name>/versions/<version>/infer", **infer_doc)
        def infer_version(request: Annotated[InferRequest, Body()], name: str, version: str):
            return resolver_response(self.post_infer(app.current_event.raw_event, unquote(name), unquote(version)))

        return app


def create_app(service: V2Service, billing: Billing, logger: logging.Logger) -> V2Api:
    return V2Api(service, billing, logger)


def openapi_app() -> APIGatewayRestResolver:
    """The resolver as the function registers it, for the API's OpenAPI document (maas.api.openapi)."""
    return V2Api(DOCS_ONLY, DOCS_ONLY, DOCS_ONLY).app
