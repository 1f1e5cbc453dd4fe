"""Routes of the embeddings function: POST /v1/embeddings, GET /v1/models[/{id}], OpenAPI and Swagger UI."""

from __future__ import annotations

import logging
from typing import Annotated
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Body

from maas.api.http import JSON, create_resolver, dumps, openapi_document
from maas.api.schemas import EmbeddingsRequest, EmbeddingsResponse, ErrorResponse, ModelCard, ModelList
from maas.embeddings_service import EmbeddingsService

TITLE = "maas embeddings API"
ERRORS = {
    400: {"description": "Invalid request", "content": {JSON: {"model": ErrorResponse}}},
    404: {"description": "Unknown model", "content": {JSON: {"model": ErrorResponse}}},
    413: {"description": "Body too large", "content": {JSON: {"model": ErrorResponse}}},
    503: {"description": "Model unavailable", "content": {JSON: {"model": ErrorResponse}}},
}


def create_app(service: EmbeddingsService, logger: logging.Logger) -> APIGatewayRestResolver:
    app = create_resolver(service.settings.max_body_bytes, logger, title=TITLE)

    @app.post(
        "/v1/embeddings",
        summary="Create embeddings (OpenAI-compatible)",
        responses={200: {"description": "Embeddings", "content": {JSON: {"model": EmbeddingsResponse}}}, **ERRORS},
    )
    def create_embeddings(request: Annotated[EmbeddingsRequest, Body()]):
        # The body is built as a plain dict and serialized once: validating 512 x 384 floats through a
        # response model would cost more than the inference.
        result = service.embed(request)
        logger.info("embeddings", extra={"inputs": len(result["data"]), "tokens": result["usage"]["total_tokens"]})
        return Response(status_code=200, content_type=JSON, body=dumps(result))

    @app.get("/v1/models", summary="List models (OpenAI-compatible)", responses={503: ERRORS[503]})
    def list_models() -> ModelList:
        return ModelList(data=service.models())

    @app.get(
        "/v1/models/<model_id>",
        summary="Retrieve a model (OpenAI-compatible)",
        responses={404: ERRORS[404], 503: ERRORS[503]},
    )
    def get_model(model_id: str) -> ModelCard:
        return service.model(unquote(model_id))

    @app.get("/openapi.json", include_in_schema=False)
    def openapi():
        return Response(status_code=200, content_type=JSON, body=openapi_document(app, TITLE))

    return app
