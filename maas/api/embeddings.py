"""Routes of the embeddings function: POST /v1/embeddings, POST /v1/feature-extraction (Hugging Face's shape),
GET /v1/models[/{id}], OpenAPI and Swagger UI.

POST /v1/embeddings, the hot route, is dispatched directly: the same pydantic model validates the body and
the same service answers, but Powertools' resolver (routing, event wrappers, middleware stack) cost about
0.4 ms per call, 15% of a 2.5 ms single-sentence inference. Every other route goes through the resolver,
which also generates the OpenAPI document from the same models (the POST route is registered there too).
"""

from __future__ import annotations

import base64
import logging
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayRestResolver

from maas.api import limits
from maas.api.metered import json_parser, metered, refused
from maas.api.openapi import DOCS_ONLY
from maas.api.resolver import ERRORS, create_resolver, documented, register_post, resolver_response
from maas.api.routes import model_routes
from maas.errors import ApiError
from maas.metering.charge import Billing, caller_from_event
from maas.schemas.embeddings import (
    EmbeddingsRequest,
    EmbeddingsResponse,
    FeatureExtractionRequest,
    FeatureExtractionResponse,
    ModelCard,
    ModelList,
)
from maas.tasks.embeddings import EmbeddingsService

EMBEDDINGS_PATH = "/v1/embeddings"
FEATURE_EXTRACTION_PATH = "/v1/feature-extraction"


class EmbeddingsApi:
    """The function's API: call it with an API Gateway REST event and a Lambda context."""

    def __init__(self, service: EmbeddingsService, billing: Billing, logger: logging.Logger, remote=None):
        """``remote``: catalog name -> maas.heavy.client.HeavyEndpoint of the SageMaker-served models this function
        forwards to (a request naming one goes to its endpoint; everything else is served here)."""
        self.service, self.billing, self.logger = service, billing, logger
        self.remote = remote or {}
        self.max_body_bytes = service.settings.max_body_bytes
        self.parse = json_parser(EmbeddingsRequest, self.max_body_bytes)
        self.parse_features = json_parser(FeatureExtractionRequest, self.max_body_bytes)
        self.app = self._resolver()

    def _remote_for(self, model_id: str | None):
        """The endpoint serving ``model_id`` if it is a forwarded (SageMaker) model, else None."""
        if not self.remote or not model_id or (self.service.manifest and model_id == self.service.manifest.name):
            return None
        from maas.inference.catalog import default_catalog

        entry = default_catalog().resolve(model_id)
        endpoint = self.remote.get(entry.name) if entry is not None and entry.runtime == "sagemaker" else None
        return (endpoint, entry) if endpoint is not None else None

    def forwarded(self, remote, event: dict) -> tuple[str, int, object]:
        """The request, unchanged, to the model's endpoint: (its body, the tokens it counted, the billed model)."""
        from maas.heavy.client import BilledModel

        endpoint, entry = remote
        body = event.get("body") or ""
        raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode("utf-8")
        answer = endpoint.invoke(raw, {"route": "embeddings"})
        billed = BilledModel(entry.name, entry.version, "embeddings")
        return answer.body.decode("utf-8", errors="replace"), answer.units, billed

    def __call__(self, event: dict, context) -> dict:
        if event.get("httpMethod") == "POST":
            path = event.get("resource") or event.get("path")
            if path == EMBEDDINGS_PATH:
                return self.post_embeddings(event)
            if path == FEATURE_EXTRACTION_PATH:
                return self.post_feature_extraction(event)
        return self.app.resolve(event, context)

    def post_embeddings(self, event: dict) -> dict:
        """POST /v1/embeddings without the resolver; same validation, limits and error shape."""

        def run(request: EmbeddingsRequest, reserve) -> tuple[dict | str, int, object]:
            remote = self._remote_for(request.model)
            if remote is not None:  # its endpoint counts the tokens: fitted to the quota after it answered
                return self.forwarded(remote, event)
            result, manifest = self.service.embed_billed(request, reserve)
            return result, result["usage"]["total_tokens"], manifest

        return metered(self.billing, event, self.parse, run, logger=self.logger, name="embeddings")

    def post_feature_extraction(self, event: dict) -> dict:
        """POST /v1/feature-extraction (Hugging Face's shape): the embeddings of /v1/embeddings as plain nested lists,
        billed exactly as /v1/embeddings (its tokens, task embeddings). Served models only: a heavy model's
        endpoint answers /v1/embeddings."""

        def run(request: FeatureExtractionRequest, reserve) -> tuple[list, int, object]:
            result, manifest = self.service.embed_billed(request.as_embeddings(), reserve)
            return [d["embedding"] for d in result["data"]], result["usage"]["total_tokens"], manifest

        return metered(self.billing, event, self.parse_features, run, logger=self.logger, name="feature-extraction")

    def _resolver(self) -> APIGatewayRestResolver:
        app = create_resolver(self.max_body_bytes, self.logger)
        service = self.service

        @app.exception_handler(ApiError)
        def _api_error(err: ApiError):
            caller = caller_from_event(app.current_event.raw_event)
            return resolver_response(refused(self.billing, caller, err, self.logger))

        register_post(
            app,
            EMBEDDINGS_PATH,
            EmbeddingsRequest,
            self.post_embeddings,
            name="create_embeddings",
            summary="Create embeddings (OpenAI-compatible)",
            response=EmbeddingsResponse,
            description="Embeddings",
            limits=limits.EMBEDDINGS,
        )

        register_post(
            app,
            FEATURE_EXTRACTION_PATH,
            FeatureExtractionRequest,
            self.post_feature_extraction,
            name="feature_extraction",
            summary="Feature extraction (Hugging Face; huggingface_hub InferenceClient(base_url=<this URL>))",
            response=FeatureExtractionResponse,
            description="One vector per input",
            limits=limits.FEATURE_EXTRACTION,
        )

        @app.get(
            "/v1/models",
            summary="List models (OpenAI-compatible)",
            responses={200: documented(ModelList, "Models"), 503: ERRORS[503]},
        )
        def list_models() -> ModelList:
            return ModelList(data=[with_routes(card) for card in service.models()])

        @app.get(
            "/v1/models/<model_id>",
            summary="Retrieve a model (OpenAI-compatible)",
            responses={200: documented(ModelCard, "The model"), 404: ERRORS[404], 503: ERRORS[503]},
        )
        def get_model(model_id: str) -> ModelCard:
            return with_routes(service.model(unquote(model_id)))

        return app


def with_routes(card: ModelCard) -> ModelCard:
    """``card`` with the routes that take it (maas.api.routes), from its catalog entry's tasks."""
    from maas.inference.catalog import default_catalog

    entry = default_catalog().resolve(card.id)
    tasks = (entry.task, *entry.tasks_also) if entry is not None else (card.task,)
    v2 = "embeddings" in tasks
    return card.model_copy(update={"routes": model_routes(card.id, tasks, v2)})


def create_app(service: EmbeddingsService, billing: Billing, logger: logging.Logger, remote=None) -> EmbeddingsApi:
    return EmbeddingsApi(service, billing, logger, remote)


def openapi_app() -> APIGatewayRestResolver:
    """The resolver as the function registers it, for the API's OpenAPI document (maas.api.openapi)."""
    return EmbeddingsApi(DOCS_ONLY, DOCS_ONLY, DOCS_ONLY).app
