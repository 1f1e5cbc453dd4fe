"""Bodies of the batch jobs API: POST /v1/jobs, GET /v1/jobs, GET /v1/jobs/{id}."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


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
    error: str | None = Field(None, description="Why the job failed: '<code>: <message>'.")
    last_progress_at: int = Field(description="Unix seconds of the job's last change (a part done, a state).")
    stalled: bool = Field(
        description="Running with no progress for longer than the service's bound (MAAS_JOB_STALL_AFTER_S, "
        "default 900 s): its worker is waiting for a retry or lost its event."
    )
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
