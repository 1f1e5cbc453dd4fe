"""Routes of the v2 function: the Open Inference Protocol (KServe v2) REST API for the served package.

    GET  /v2                                   server metadata
    GET  /v2/health/live, /v2/health/ready     liveness; readiness (503 while the model is not loaded)
    GET  /v2/models/{name}[/versions/{v}]      model metadata (tensor names, datatypes, shapes)
    GET  /v2/models/{name}[/versions/{v}]/ready
    POST /v2/models/{name}[/versions/{v}]/infer

`infer` is authenticated and metered like every task route (units: the tokens run, task `v2-infer`); the others
are not billed. Errors are the protocol's `{"error": "<message>"}` (the code in the X-Error-Code header).
The binary tensor data extension (tritonclient's default) is served as Triton implements it: a request body of
Inference-Header-Content-Length bytes of JSON, then each input's bytes (``parameters.binary_data_size``), and binary
outputs when asked for (``binary_data_output``, or an output's ``binary_data``), answered the same way.
"""

from __future__ import annotations

import base64
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
from maas.api.resolver import (
    ERRORS,
    JSON,
    BinaryBody,
    create_resolver,
    documented,
    kserve_docs,
    resolver_response,
)
from maas.bodies import dumps, invalid_json, parse_json
from maas.errors import InvalidRequest, PayloadTooLarge, ServiceUnavailable
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
from maas.tasks.v2 import BINARY_HEADER, BinaryTensors, V2Service, with_binary_inputs

BINARY_CONTENT_TYPE = "application/octet-stream"
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
        if BINARY_HEADER.lower() in headers:
            return self._parse_binary(event, headers[BINARY_HEADER.lower()])
        return self.parse(event)

    def _parse_binary(self, event: dict, header_length: str) -> InferRequest:
        """The binary tensor data extension's body: ``header_length`` bytes of JSON, then the tensors' bytes."""
        body = event.get("body") or ""
        raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode("utf-8")
        limit = self.service.settings.max_body_bytes
        if len(raw) > limit:
            raise PayloadTooLarge(f"Request body exceeds the {limit}-byte limit.")
        if not header_length.strip().isdigit() or not 0 < int(header_length) <= len(raw):
            raise InvalidRequest(
                f"Inference-Header-Content-Length must be the JSON part's length in bytes (1 to {len(raw)}), "
                f"got {header_length[:40]!r}.",
                code="invalid_request",
            )
        split = int(header_length)
        try:
            text = raw[:split].decode("utf-8")
        except UnicodeDecodeError:
            raise invalid_json("the JSON part is not UTF-8 text") from None
        return with_binary_inputs(parse_json(text, InferRequest, limit), raw[split:])

    def post_infer(self, event: dict, name: str, version: str | None) -> dict:
        def run(request: InferRequest, reserve) -> tuple[object, int, object]:
            answer, units, billed = self.service.infer(name, request, version, reserve)
            if isinstance(answer, BinaryTensors):  # the JSON part, then the outputs' bytes; its length in a header
                head = dumps(answer.body).encode()
                answer = BinaryBody(head + answer.data, BINARY_CONTENT_TYPE, {BINARY_HEADER: str(len(head))})
            return answer, units, billed

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
