"""Bodies of OpenAI's Files and Batches API: /v1/files[...], /v1/batches[...] (the shapes the openai SDK reads)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

BatchStatus = Literal[
    "validating", "failed", "in_progress", "finalizing", "completed", "expired", "cancelling", "cancelled"
]


class FileObject(BaseModel):
    id: str = Field(description="`file-` and 24 hex digits.")
    object: Literal["file"] = "file"
    bytes: int
    created_at: int = Field(description="Unix seconds.")
    filename: str
    purpose: Literal["batch", "batch_output"]
    status: Literal["processed"] = "processed"
    expires_at: int | None = None
    status_details: str | None = None


class FileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FileObject]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool


class BatchCreate(BaseModel):
    """`POST /v1/batches`. Unknown fields are refused by name."""

    model_config = ConfigDict(extra="forbid")

    input_file_id: str = Field(min_length=1, max_length=64, description="A file uploaded with purpose `batch`.")
    endpoint: Literal["/v1/embeddings", "/v1/classify", "/v1/rerank"] = Field(
        description="Every line's `url`. `/v1/classify` and `/v1/rerank` are a maas extension: each line's `body` "
        "is answered exactly as the synchronous route answers it, billed in the same units at the batch price."
    )
    completion_window: Literal["24h"] = Field(description="Only `24h`, as OpenAI.")
    metadata: dict[str, str] | None = Field(None, description="Up to 16 pairs: keys of 64 characters, values of 512.")
    output_expires_after: dict | None = Field(None, description="Accepted for compatibility; outputs are kept.")


class BatchError(BaseModel):
    code: str
    message: str
    param: str | None = None
    line: int | None = Field(None, description="1-based line of the input file.")


class BatchErrors(BaseModel):
    object: Literal["list"] = "list"
    data: list[BatchError]


class BatchRequestCounts(BaseModel):
    total: int
    completed: int
    failed: int


class BatchUsage(BaseModel):
    input_tokens: int = Field(description="Billable units of the lines served (input tokens for text models).")
    output_tokens: int = 0
    total_tokens: int
    input_tokens_details: dict = Field(default_factory=lambda: {"cached_tokens": 0})
    output_tokens_details: dict = Field(default_factory=lambda: {"reasoning_tokens": 0})


class Batch(BaseModel):
    id: str = Field(description="`batch_` and 24 hex digits; the same job is `job_` and the same digits.")
    object: Literal["batch"] = "batch"
    endpoint: str
    errors: BatchErrors | None = None
    input_file_id: str
    completion_window: str
    status: BatchStatus
    output_file_id: str | None = None
    error_file_id: str | None = None
    created_at: int
    in_progress_at: int | None = None
    expires_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    request_counts: BatchRequestCounts
    metadata: dict[str, str] | None = None
    model: str | None = None
    usage: BatchUsage | None = None


class BatchList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Batch]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool


class BatchInputLine(BaseModel):
    """One line of a batch's input file."""

    model_config = ConfigDict(extra="forbid")

    custom_id: str = Field(min_length=1, max_length=512)
    method: Literal["POST"]
    url: str
    body: dict


class UploadCreate(BaseModel):
    """`POST /v1/uploads`: a file that will come in parts (the SDK's `uploads.upload_file_chunked`)."""

    model_config = ConfigDict(extra="forbid")

    bytes: int = Field(ge=1, le=200 * 1024 * 1024, description="The whole file's size; `complete` checks it.")
    filename: str = Field(min_length=1, max_length=255)
    mime_type: str = Field(min_length=1, max_length=255)
    purpose: Literal["batch"]
    expires_after: dict | None = Field(None, description="Accepted for compatibility; uploads expire in an hour.")


class UploadComplete(BaseModel):
    model_config = ConfigDict(extra="forbid")

    part_ids: list[str] = Field(min_length=1, max_length=10_000, description="The parts, in the file's order.")
    md5: str | None = Field(None, description="The whole file's md5 (hex); checked when given.")


class UploadPart(BaseModel):
    id: str
    object: Literal["upload.part"] = "upload.part"
    created_at: int
    upload_id: str


class Upload(BaseModel):
    id: str
    object: Literal["upload"] = "upload"
    bytes: int
    created_at: int
    expires_at: int
    filename: str
    purpose: str
    status: Literal["pending", "completed", "cancelled", "expired"]
    file: FileObject | None = None
