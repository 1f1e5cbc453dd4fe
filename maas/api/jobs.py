"""Routes of the jobs function: POST /v1/jobs, GET /v1/jobs, GET /v1/jobs/{id} (the caller's own jobs only).

The tenant comes only from the authorizer's context (maas.metering.charge.caller_from_event).
"""

from __future__ import annotations

import logging
from typing import Annotated

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Body

from maas.api.openapi import DOCS_ONLY
from maas.api.resolver import JSON, create_resolver, documented, dumps
from maas.errors import Unauthorized
from maas.jobs.service import JobsService
from maas.metering.charge import caller_from_event
from maas.schemas.errors import ErrorResponse
from maas.schemas.jobs import Job, JobCreate, JobCreated, JobList
from maas.settings.names import DEFAULT_MAX_BODY_BYTES
from maas.tenancy.store import Caller

ERRORS = {
    status: {"description": text, "content": {JSON: {"model": ErrorResponse}}}
    for status, text in ((400, "Invalid request"), (401, "Missing API key"), (404, "No such job"))
}


def create_app(service: JobsService, logger: logging.Logger) -> APIGatewayRestResolver:
    app = create_resolver(DEFAULT_MAX_BODY_BYTES, logger)

    def caller() -> Caller:
        found = caller_from_event(app.current_event.raw_event)
        if found is None:
            raise Unauthorized("Missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'.")
        return found

    @app.post(
        "/v1/jobs",
        summary="Create a batch job; upload its file to the returned URL",
        responses={
            201: documented(JobCreated, "The job and its upload URL"),
            400: ERRORS[400],
            401: ERRORS[401],
            404: {**ERRORS[404], "description": "No such embeddings model"},
        },
    )
    def create_job(request: Annotated[JobCreate, Body()]):
        who = caller()
        body = service.create(who, request.model, request.input_format, request.encoding_format)
        logger.info("job created", extra={"tenant_id": who.tenant_id, "job_id": body["id"]})
        return Response(status_code=201, content_type=JSON, body=dumps(body))

    @app.get("/v1/jobs", summary="The caller's jobs", responses={200: documented(JobList, "Jobs"), 401: ERRORS[401]})
    def list_jobs():
        return Response(status_code=200, content_type=JSON, body=dumps(service.list(caller())))

    @app.get(
        "/v1/jobs/<job_id>",
        summary="A job's status, progress and result URLs",
        responses={200: documented(Job, "The job"), 401: ERRORS[401], 404: ERRORS[404]},
    )
    def get_job(job_id: str):
        return Response(status_code=200, content_type=JSON, body=dumps(service.get(caller(), job_id)))

    return app


def openapi_app() -> APIGatewayRestResolver:
    """The resolver as the function registers it, for the API's OpenAPI document (maas.api.openapi)."""
    return create_app(DOCS_ONLY, DOCS_ONLY)
