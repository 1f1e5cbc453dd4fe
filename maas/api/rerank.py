"""Routes of the rerank function: POST /v1/rerank (the Cohere/Jina shape).

Authenticated and metered exactly like POST /v1/embeddings: the tenant from the authorizer's context, a quota
pre-check before any compute, one exactly-once usage event (units: tokens of the query plus the documents,
task `rerank`), refused requests counted apart, every error in the one error shape.
"""

from __future__ import annotations

import logging

from aws_lambda_powertools.event_handler import APIGatewayRestResolver

from maas.api.metered import json_parser, metered
from maas.api.openapi import DOCS_ONLY
from maas.api.resolver import create_resolver, register_post
from maas.metering.charge import Billing
from maas.schemas.rerank import RerankRequest, RerankResponse
from maas.tasks.rerank import RerankService

RERANK_PATH = "/v1/rerank"


class RerankApi:
    """The function's API: call it with an API Gateway REST event and a Lambda context."""

    def __init__(self, service: RerankService, billing: Billing, logger: logging.Logger):
        self.service, self.billing, self.logger = service, billing, logger
        self.parse = json_parser(RerankRequest, service.settings.max_body_bytes)
        self.app = self._resolver(logger)

    def __call__(self, event: dict, context) -> dict:
        if event.get("httpMethod") == "POST" and (event.get("resource") or event.get("path")) == RERANK_PATH:
            return self.post_rerank(event)
        return self.app.resolve(event, context)

    def _run(self, request: RerankRequest, reserve) -> tuple[dict, int, object]:
        result, billed = self.service.rerank(request, reserve)
        return result, result["usage"]["total_tokens"], billed

    def post_rerank(self, event: dict) -> dict:
        return metered(self.billing, event, self.parse, self._run, logger=self.logger, name="rerank")

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
        )

        return app


def create_app(service: RerankService, billing: Billing, logger: logging.Logger) -> RerankApi:
    return RerankApi(service, billing, logger)


def openapi_app() -> APIGatewayRestResolver:
    """The resolver as the function registers it, for the API's OpenAPI document (maas.api.openapi)."""
    return RerankApi(DOCS_ONLY, DOCS_ONLY, DOCS_ONLY).app
