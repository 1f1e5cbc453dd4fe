"""Routes of the rerank function: POST /v1/rerank (the Cohere/Jina shape).

Authenticated and metered exactly like POST /v1/embeddings: the tenant from the authorizer's context, a quota
pre-check before any compute, one exactly-once usage event (units: tokens of the query plus the documents,
task `rerank`), refused requests counted apart, every error in the one error shape.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Annotated

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import BaseModel

from maas.api.embeddings import ERRORS, proxy_result
from maas.api.openapi import DOCS_ONLY
from maas.api.resolver import JSON, create_resolver, dumps
from maas.bodies import json_body
from maas.errors import ApiError, internal_error_body
from maas.metering.charge import Billing, request_id_of
from maas.schemas.rerank import RerankRequest, RerankResponse
from maas.tasks.rerank import RerankService

RERANK_PATH = "/v1/rerank"


def resolver_response(result: dict) -> Response:
    """A MeteredPost proxy result as the resolver's Response (for routes the resolver also registers)."""
    headers = {k: v[0] for k, v in result["multiValueHeaders"].items() if k != "Content-Type"}
    return Response(result["statusCode"], content_type=JSON, body=result["body"], headers=headers)


class MeteredPost:
    """One metered JSON POST route, dispatched without the resolver (as the embeddings hot path is), so that
    validation failures are counted as failed requests like every other refusal."""

    def __init__(self, billing: Billing, logger: logging.Logger, max_body_bytes: int):
        self.billing, self.logger, self.max_body_bytes = billing, logger, max_body_bytes

    def __call__(
        self,
        event: dict,
        model: type[BaseModel] | Callable[[dict], object],
        run: Callable[[object], tuple[object, int, object]],
    ):
        """``model``: the pydantic model of a JSON body, or a function parsing the event into a request (raw
        bodies); ``run(request) -> (response body, billable units, billed manifest)``: the body a dict or
        already-serialised JSON text, the manifest what the usage event records (the version that answered)."""
        caller = None
        try:
            caller = self.billing.caller(event)
            if isinstance(model, type) and issubclass(model, BaseModel):
                request = json_body(event, model, self.max_body_bytes)
            else:
                request = model(event)
            before = self.billing.precheck(caller)
            started = time.perf_counter()
            result, units, billed = run(request)
            compute_ms = (time.perf_counter() - started) * 1000
            headers = self.billing.charge(caller, request_id_of(event, caller), billed, units, compute_ms, before)
            self.logger.debug("metered call", extra={"units": units, "ms": round(compute_ms, 2)})
            return proxy_result(200, result if isinstance(result, str) else dumps(result), headers)
        except ApiError as err:
            self.logger.info("request refused", extra={"status": err.status, "code": err.code})
            return proxy_result(err.status, dumps(err.body()), self.billing.failed(caller, err))
        except Exception:
            self.logger.exception("unhandled error")
            return proxy_result(500, dumps(internal_error_body()))


class RerankApi:
    """The function's API: call it with an API Gateway REST event and a Lambda context."""

    def __init__(self, service: RerankService, billing: Billing, logger: logging.Logger):
        self.service = service
        self.post = MeteredPost(billing, logger, service.settings.max_body_bytes)
        self.app = self._resolver(logger)

    def __call__(self, event: dict, context) -> dict:
        if event.get("httpMethod") == "POST" and (event.get("resource") or event.get("path")) == RERANK_PATH:
            return self.post_rerank(event)
        return self.app.resolve(event, context)

    def _run(self, request: RerankRequest) -> tuple[dict, int, object]:
        result, billed = self.service.rerank(request)
        return result, result["usage"]["total_tokens"], billed

    def post_rerank(self, event: dict) -> dict:
        return self.post(event, RerankRequest, self._run)

    def _resolver(self, logger: logging.Logger) -> APIGatewayRestResolver:
        app = create_resolver(self.service.settings.max_body_bytes, logger)

        # Registered for routing (405 on other methods) and the OpenAPI document; __call__ answers it.
        @app.post(
            RERANK_PATH,
            summary="Rerank documents by relevance to a query (Cohere/Jina shape)",
            responses={200: {"description": "Ranked results", "content": {JSON: {"model": RerankResponse}}}, **ERRORS},
        )
        def rerank(request: Annotated[RerankRequest, Body()]):
            return resolver_response(self.post_rerank(app.current_event.raw_event))

        return app


def create_app(service: RerankService, billing: Billing, logger: logging.Logger) -> RerankApi:
    return RerankApi(service, billing, logger)


def openapi_app() -> APIGatewayRestResolver:
    """The resolver as the function registers it, for the API's OpenAPI document (maas.api.openapi)."""
    return RerankApi(DOCS_ONLY, DOCS_ONLY, DOCS_ONLY).app
