"""Routes of the jobs function: POST /v1/jobs, GET /v1/jobs, GET /v1/jobs/{id} (the caller's own jobs only).

The tenant comes only from the authorizer's context (maas.metering.charge.caller_from_event).
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import BaseModel, ConfigDict, Field

from maas.api.openapi import DOCS_ONLY
from maas.api.resolver import JSON, create_resolver, documented, dumps
from maas.errors import Unauthorized
from maas.jobs.service import JobsService
from maas.metering.charge import caller_from_event
from maas.schemas.embeddings import ErrorResponse
from maas.settings.names import DEFAULT_MAX_BODY_BYTES
from maas.tenancy.store import Caller


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field("all-minilm-l6-v2", min_length=1, max_length=200, description="The embeddings model.")
    input_format: Literal["jsonl", "csv"] = Field(
        "jsonl",
        description='jsonl: one JSON string or {"input": ..., "custom_id": ...} per line; '
        "csv: a header with an 'input' (or 'text') column, one record per line.",
    )
    encoding_format: Literal["float", "base64"] = "float"


# Response bodies, as maas.jobs.service.JobsService builds them (documented here, where the routes are).
class JobProgress(BaseModel):
    lines: int = Field(description="Input lines processed so far.")
    succeeded: int
    failed: int = Field(description="Lines answered with an error line (not billed).")
    parts: int = Field(description="Result parts written.")


class JobUsage(BaseModel):
    units: int = Field(description="Billable units so far (input tokens).")


class JobResults(BaseModel):
    manifest_url: str
    part_urls: list[str] = Field(description="Presigned GET URLs of results/.../part-NNNNN.jsonl, in order.")
    expires_in: int = Field(description="Seconds the URLs stay valid.")


class Job(BaseModel):
    id: str
    object: Literal["batch_job"] = "batch_job"
    status: Literal["awaiting_upload", "running", "completed", "failed"]
    model: str
    input_format: Literal["jsonl", "csv"]
    encoding_format: Literal["float", "base64"]
    created: int = Field(description="Unix seconds.")
    updated: int = Field(description="Unix seconds.")
    progress: JobProgress
    usage: JobUsage
    error: str | None = None
    results: JobResults | None = Field(None, description="Once completed (not in listings).")


class JobUpload(BaseModel):
    method: Literal["PUT"] = "PUT"
    url: str = Field(description="Presigned URL: PUT the input file here; the upload starts the job.")
    expires_in: int


class JobCreated(Job):
    upload: JobUpload


class JobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Job]


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
        responses={201: documented(JobCreated, "The job and its upload URL"), 400: ERRORS[400], 401: ERRORS[401]},
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
