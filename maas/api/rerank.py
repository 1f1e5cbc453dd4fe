"""Routes of the rerank function: POST /v1/rerank (the Cohere v1/Jina shape) and POST /v2/rerank (Cohere's v2).

Authenticated and metered exactly like POST /v1/embeddings: the tenant from the authorizer's context, a quota
pre-check before any compute, one exactly-once usage event (units: tokens of the query plus the documents,
task `rerank`), refused requests counted apart, every error in the one error shape.
"""

from __future__ import annotations

import logging

from aws_lambda_powertools.event_handler import APIGatewayRestResolver

from maas.api import limits
from maas.api.metered import json_parser, metered
from maas.api.openapi import DOCS_ONLY
from maas.api.resolver import create_resolver, register_post
from maas.metering.charge import Billing
from maas.schemas.rerank import RerankRequest, RerankResponse, RerankV2Request, RerankV2Response
from maas.tasks.rerank import RerankService

RERANK_PATH = "/v1/rerank"
RERANK_V2_PATH = "/v2/rerank"  # Cohere's v2 shape (cohere.ClientV2, litellm's cohere/ rerank)


class RerankApi:
    """The function's API: call it with an API Gateway REST event and a Lambda context."""

    def __init__(self, service: RerankService, billing: Billing, logger: logging.Logger):
        self.service, self.billing, self.logger = service, billing, logger
        self.parse = json_parser(RerankRequest, service.settings.max_body_bytes)
        self.parse_v2 = json_parser(RerankV2Request, service.settings.max_body_bytes)
        self.app = self._resolver(logger)

    def __call__(self, event: dict, context) -> dict:
        if event.get("httpMethod") == "POST":
            path = event.get("resource") or event.get("path")
            if path == RERANK_PATH:
                return self.post_rerank(event)
            if path == RERANK_V2_PATH:
                return self.post_rerank_v2(event)
        return self.app.resolve(event, context)

    def run(self, request: RerankRequest, reserve) -> tuple[dict, int, object]:
        """The route's answer to a parsed request: (body, billable units, what is billed). Batch lines too."""
        result, billed = self.service.rerank(request, reserve)
        return result, result["usage"]["total_tokens"], billed

    def post_rerank(self, event: dict) -> dict:
        return metered(self.billing, event, self.parse, self.run, logger=self.logger, name="rerank")

    def post_rerank_v2(self, event: dict) -> dict:
        """POST /v2/rerank: Cohere's v2 request and response around the same service, billed as /v1/rerank."""
        request_id = (event.get("requestContext") or {}).get("requestId") or ""

        def run(request: RerankV2Request, reserve) -> tuple[dict, int, object]:
            result, tokens, billed = self.run(request.as_v1(), reserve)
            body = {
                "id": request_id,
                "results": result["results"],
                "meta": {"api_version": {"version": "2"}},
                "model": result["model"],
                "usage": result["usage"],
            }
            return body, tokens, billed

        return metered(self.billing, event, self.parse_v2, run, logger=self.logger, name="rerank")

    def _resolver(self, logger: logging.Logger) -> APIGatewayRestResolver:
        app = create_resolver(self.service.settings.max_body_bytes, logger)

        register_post(
            app,
            RERANK_PATH,
            RerankRequest,
            self.post_rerank,
            name="rerank",
            summary="Rerank documents by relevance to a query (Cohere/Jina shape)",
            response=RerankResponse,
            description="Ranked results",
            limits=limits.RERANK,
        )

        register_post(
            app,
            RERANK_V2_PATH,
            RerankV2Request,
            self.post_rerank_v2,
            name="rerank_v2",
            summary="Rerank documents (Cohere v2 shape: cohere.ClientV2.rerank)",
            response=RerankV2Response,
            description="Ranked",
            limits=limits.RERANK,
        )

        return app


def create_app(service: RerankService, billing: Billing, logger: logging.Logger) -> RerankApi:
    return RerankApi(service, billing, logger)


def openapi_app() -> APIGatewayRestResolver:
    """The resolver as the function registers it, for the API's OpenAPI document (maas.api.openapi)."""
    return RerankApi(DOCS_ONLY, DOCS_ONLY, DOCS_ONLY).app
