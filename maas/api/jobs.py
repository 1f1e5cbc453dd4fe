"""Routes of the jobs function: POST /v1/jobs, GET /v1/jobs, GET /v1/jobs/{id} (the caller's own jobs only).

The tenant comes only from the authorizer's context (maas.billing.caller_from_event).
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import BaseModel, ConfigDict, Field

from maas.api.http import JSON, create_resolver, dumps, openapi_document
from maas.billing import caller_from_event
from maas.constants import DEFAULT_MAX_BODY_BYTES
from maas.errors import Unauthorized
from maas.jobs_service import JobsService
from maas.tenancy import Caller

TITLE = "maas jobs API"


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field("all-minilm-l6-v2", min_length=1, max_length=200, description="The embeddings model.")
    input_format: Literal["jsonl", "csv"] = Field(
        "jsonl",
        description='jsonl: one JSON string or {"input": ..., "custom_id": ...} per line; '
        "csv: a header with an 'input' (or 'text') column, one record per line.",
    )
    encoding_format: Literal["float", "base64"] = "float"


def create_app(service: JobsService, logger: logging.Logger) -> APIGatewayRestResolver:
    app = create_resolver(DEFAULT_MAX_BODY_BYTES, logger, title=TITLE)

    def caller() -> Caller:
        found = caller_from_event(app.current_event.raw_event)
        if found is None:
            raise Unauthorized("Missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'.")
        return found

    @app.post("/v1/jobs", summary="Create a batch job; upload its file to the returned URL")
    def create_job(request: Annotated[JobCreate, Body()]):
        who = caller()
        body = service.create(who, request.model, request.input_format, request.encoding_format)
        logger.info("job created", extra={"tenant_id": who.tenant_id, "job_id": body["id"]})
        return Response(status_code=201, content_type=JSON, body=dumps(body))

    @app.get("/v1/jobs", summary="The caller's jobs")
    def list_jobs():
        return Response(status_code=200, content_type=JSON, body=dumps(service.list(caller())))

    @app.get("/v1/jobs/<job_id>", summary="A job's status, progress and result URLs")
    def get_job(job_id: str):
        return Response(status_code=200, content_type=JSON, body=dumps(service.get(caller(), job_id)))

    @app.get("/openapi.json", include_in_schema=False)
    def openapi():
        return Response(status_code=200, content_type=JSON, body=openapi_document(app, TITLE))

    return app
