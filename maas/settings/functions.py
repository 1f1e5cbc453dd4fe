"""One validated settings object per function, read from the environment when the function starts."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from maas.settings import names as c
from maas.tables import API_KEYS, JOBS, TENANTS, USAGE


class SettingsError(Exception):
    """The function's environment is invalid; the message names the variable."""


def _metering_needs_a_table(settings):
    if settings.metering == "on" and not settings.usage_table:
        raise ValueError(f"{USAGE.env_var} is required when metering is on ({c.ENV_METERING}=off disables it)")
    return settings


class EmbeddingsSettings(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    model_source: str = Field(c.DEFAULT_MODEL_SOURCE, alias=c.ENV_MODEL_SOURCE, min_length=1)
    model_cache_dir: Path = Field(Path(c.DEFAULT_MODEL_CACHE_DIR), alias=c.ENV_MODEL_CACHE_DIR)
    threads: int | None = Field(None, alias=c.ENV_THREADS, ge=1, le=64)
    max_inputs: int = Field(c.DEFAULT_MAX_INPUTS, alias=c.ENV_MAX_INPUTS, ge=1, le=2048)
    max_body_bytes: int = Field(c.DEFAULT_MAX_BODY_BYTES, alias=c.ENV_MAX_BODY_BYTES, ge=1024, le=10 * 1024 * 1024)
    batch_size: int = Field(c.DEFAULT_BATCH_SIZE, alias=c.ENV_BATCH_SIZE, ge=1, le=256)
    batch_tokens: int = Field(c.DEFAULT_BATCH_TOKENS, alias=c.ENV_BATCH_TOKENS, ge=16, le=65536)
    usage_table: str | None = Field(None, alias=USAGE.env_var, min_length=3)
    # "off" only for benchmarking the bare handler: production always meters.
    metering: Literal["on", "off"] = Field("on", alias=c.ENV_METERING)
    plans_file: Path | None = Field(None, alias=c.ENV_PLANS_FILE)

    _metering_needs_a_table = model_validator(mode="after")(_metering_needs_a_table)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EmbeddingsSettings:
        """Validate the variables this function reads; unset ones take their documented defaults."""
        environ = os.environ if environ is None else environ
        names = {f.alias for f in cls.model_fields.values() if f.alias}
        try:
            return cls.model_validate({k: v for k, v in environ.items() if k in names})
        except ValidationError as exc:
            problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" if e["loc"] else e["msg"] for e in exc.errors())
            raise SettingsError(f"invalid function settings: {problems}") from exc


class AuthorizerSettings(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    tenants_table: str = Field(alias=TENANTS.env_var, min_length=3)
    api_keys_table: str = Field(alias=API_KEYS.env_var, min_length=3)

    from_env = classmethod(EmbeddingsSettings.from_env.__func__)


class UsageSettings(BaseModel):
    """GET /v1/usage: reads the usage table; prices and quotas from the plans (packaged, or a file)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    usage_table: str = Field(alias=USAGE.env_var, min_length=3)
    plans_file: Path | None = Field(None, alias=c.ENV_PLANS_FILE)

    from_env = classmethod(EmbeddingsSettings.from_env.__func__)


class BatchSettings(BaseModel):
    """The batch workers (functions/batch_s3: job files; functions/batch_sqs: queued requests and job
    continuations): the embeddings model, metering, tenants, jobs, the job bucket, chunking and the DLQ."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    model_source: str = Field(c.DEFAULT_MODEL_SOURCE, alias=c.ENV_MODEL_SOURCE, min_length=1)
    model_cache_dir: Path = Field(Path(c.DEFAULT_MODEL_CACHE_DIR), alias=c.ENV_MODEL_CACHE_DIR)
    threads: int | None = Field(None, alias=c.ENV_THREADS, ge=1, le=64)
    batch_size: int = Field(c.DEFAULT_BATCH_SIZE, alias=c.ENV_BATCH_SIZE, ge=1, le=256)
    batch_tokens: int = Field(c.DEFAULT_BATCH_TOKENS, alias=c.ENV_BATCH_TOKENS, ge=16, le=65536)
    usage_table: str | None = Field(None, alias=USAGE.env_var, min_length=3)
    metering: Literal["on", "off"] = Field("on", alias=c.ENV_METERING)
    plans_file: Path | None = Field(None, alias=c.ENV_PLANS_FILE)
    tenants_table: str = Field(alias=TENANTS.env_var, min_length=3)
    jobs_table: str = Field(alias=JOBS.env_var, min_length=3)
    # The S3 worker takes the bucket from each event; the SQS worker writes request results here.
    job_bucket: str | None = Field(None, alias=c.ENV_JOB_BUCKET, min_length=3)
    results_prefix: str = Field(c.DEFAULT_RESULTS_PREFIX, alias=c.ENV_RESULTS_PREFIX, pattern=r"^[a-z0-9-]+/$")
    chunk_lines: int = Field(c.DEFAULT_CHUNK_LINES, alias=c.ENV_CHUNK_LINES, ge=1, le=1_000_000)
    max_chunks: int = Field(0, alias=c.ENV_MAX_CHUNKS, ge=0)
    continuation_queue_url: str | None = Field(None, alias=c.ENV_CONTINUATION_QUEUE_URL, min_length=8)
    dlq_url: str | None = Field(None, alias=c.ENV_DLQ_URL, min_length=8)
    max_receive_count: int = Field(c.DEFAULT_MAX_RECEIVE_COUNT, alias=c.ENV_MAX_RECEIVE_COUNT, ge=1, le=1000)

    _metering_needs_a_table = model_validator(mode="after")(_metering_needs_a_table)

    from_env = classmethod(EmbeddingsSettings.from_env.__func__)


class JobsSettings(BaseModel):
    """POST/GET /v1/jobs: the jobs table and the job bucket (presigned upload and result URLs)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    jobs_table: str = Field(alias=JOBS.env_var, min_length=3)
    job_bucket: str = Field(alias=c.ENV_JOB_BUCKET, min_length=3)
    results_prefix: str = Field(c.DEFAULT_RESULTS_PREFIX, alias=c.ENV_RESULTS_PREFIX, pattern=r"^[a-z0-9-]+/$")
    url_ttl_s: int = Field(c.PRESIGNED_URL_TTL_S, ge=60, le=7 * 24 * 3600)

    from_env = classmethod(EmbeddingsSettings.from_env.__func__)


class RerankSettings(EmbeddingsSettings):
    """POST /v1/rerank: the embeddings function's settings (it runs the same embedding model) plus a
    limit on documents per request."""

    max_documents: int = Field(c.DEFAULT_MAX_DOCUMENTS, alias=c.ENV_MAX_DOCUMENTS, ge=1, le=10000)


class ClassifySettings(EmbeddingsSettings):
    """POST /v1/classify: MAAS_MODEL_SOURCE is the embedding model (zero-shot); MAAS_CLASSIFIER_SOURCES the
    trained classifier packages, comma-separated; unset: the `ticket-intents` package next to the embedding
    model's folder (/opt/models/ticket-intents in a layer, models/ticket-intents locally)."""

    classifier_sources: str | None = Field(None, alias=c.ENV_CLASSIFIER_SOURCES, min_length=1)
    max_inputs: int = Field(c.DEFAULT_CLASSIFY_MAX_INPUTS, alias=c.ENV_MAX_INPUTS, ge=1, le=2048)

    def classifier_source_list(self) -> list[str]:
        if self.classifier_sources:
            return [s.strip() for s in self.classifier_sources.split(",") if s.strip()]
        parent = self.model_source.rstrip("/").rpartition("/")[0]
        return [f"{parent}/{c.DEFAULT_CLASSIFIER}" if parent else c.DEFAULT_CLASSIFIER]


class ImageClassifySettings(EmbeddingsSettings):
    """POST /v1/images/classify: MAAS_MODEL_SOURCE is the image classification package (default: the
    digits-cnn layer's /opt/models/digits-cnn); MAAS_MAX_INPUTS images per request; MAAS_MAX_IMAGE_PIXELS per
    image (checked from the header, before decoding)."""

    model_source: str = Field(c.DEFAULT_IMAGE_MODEL_SOURCE, alias=c.ENV_MODEL_SOURCE, min_length=1)
    max_inputs: int = Field(c.DEFAULT_IMAGE_MAX_INPUTS, alias=c.ENV_MAX_INPUTS, ge=1, le=256)
    max_image_pixels: int = Field(c.DEFAULT_MAX_IMAGE_PIXELS, alias=c.ENV_MAX_IMAGE_PIXELS, ge=64, le=100_000_000)


class HeavyProxySettings(BaseModel):
    """functions/heavy_proxy: which endpoint serves which catalog model, time bounds, metering."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    endpoint_name: str = Field(alias=c.ENV_SAGEMAKER_ENDPOINT, min_length=1, max_length=63)
    inference_component: str | None = Field(None, alias=c.ENV_INFERENCE_COMPONENT, min_length=1)
    model_name: str = Field(alias=c.ENV_MODEL_NAME, min_length=1)
    runtime_url: str | None = Field(None, alias=c.ENV_SAGEMAKER_RUNTIME_URL, pattern=r"^https?://")
    timeout_s: float = Field(c.DEFAULT_ENDPOINT_TIMEOUT_S, alias=c.ENV_ENDPOINT_TIMEOUT_S, gt=0, le=60)
    attempts: int = Field(c.DEFAULT_ENDPOINT_ATTEMPTS, alias=c.ENV_ENDPOINT_ATTEMPTS, ge=1, le=5)
    max_body_bytes: int = Field(
        c.ENDPOINT_MAX_PAYLOAD_BYTES, alias=c.ENV_MAX_BODY_BYTES, ge=1024, le=c.ENDPOINT_MAX_PAYLOAD_BYTES
    )
    usage_table: str | None = Field(None, alias=USAGE.env_var, min_length=3)
    metering: Literal["on", "off"] = Field("on", alias=c.ENV_METERING)
    plans_file: Path | None = Field(None, alias=c.ENV_PLANS_FILE)

    from_env = classmethod(EmbeddingsSettings.from_env.__func__)

    _metering_needs_a_table = model_validator(mode="after")(_metering_needs_a_table)
