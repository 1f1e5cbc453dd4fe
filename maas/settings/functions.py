"""One validated settings object per function, composed from the mixins and read when the function starts."""

from __future__ import annotations

from pydantic import Field

from maas.settings import names as c
from maas.settings.base import EnvSettings
from maas.settings.mixins import (
    HeavyEndpointEnv,
    JobsEnv,
    LimitsEnv,
    MeteringEnv,
    ModelEnv,
    PlansEnv,
    TenancyEnv,
)
from maas.tables import API_KEYS, USAGE


class EmbeddingsSettings(ModelEnv, MeteringEnv, LimitsEnv):
    """POST /v1/embeddings, GET /v1/models and the /v2 routes (MAAS_MAX_INPUTS bounds the rows of one infer)."""


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
        """The classifier packages to load: the listed sources, or the default package beside the model."""
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


class HeavyProxySettings(HeavyEndpointEnv, MeteringEnv):
    """functions/heavy_proxy: which endpoint serves which catalog model, time bounds, metering."""

    # InvokeEndpoint takes request payloads up to 6 MB on real-time endpoints.
    max_body_bytes: int = Field(
        c.ENDPOINT_MAX_PAYLOAD_BYTES, alias=c.ENV_MAX_BODY_BYTES, ge=1024, le=c.ENDPOINT_MAX_PAYLOAD_BYTES
    )


class AuthorizerSettings(TenancyEnv):
    """The REQUEST authorizer: tenants and their API keys."""

    api_keys_table: str = Field(alias=API_KEYS.env_var, min_length=3)


class UsageSettings(PlansEnv):
    """GET /v1/usage: reads the usage table; prices and quotas from the plans (packaged, or a file)."""

    usage_table: str = Field(alias=USAGE.env_var, min_length=3)


class AggregatorSettings(EnvSettings):
    """The usage table's stream consumer: it writes the aggregates of that table."""

    usage_table: str = Field(alias=USAGE.env_var, min_length=3)


class JobsSettings(JobsEnv):
    """POST/GET /v1/jobs: the jobs table and the job bucket (presigned upload and result URLs)."""

    job_bucket: str = Field(alias=c.ENV_JOB_BUCKET, min_length=3)
    # Not a variable: the presigned URLs' lifetime is fixed.
    url_ttl_s: int = Field(c.PRESIGNED_URL_TTL_S, ge=60, le=7 * 24 * 3600)
    stall_after_s: int = Field(c.DEFAULT_JOB_STALL_AFTER_S, alias=c.ENV_JOB_STALL_AFTER_S, ge=60, le=7 * 24 * 3600)


class FailedEventsSettings(JobsEnv):
    """functions/failed_events: the batch workers' failed events in, their jobs marked failed, the events parked in
    the dead-letter queue."""

    dlq_url: str = Field(alias=c.ENV_DEAD_LETTERS_URL, min_length=8)


class BatchSettings(ModelEnv, MeteringEnv, TenancyEnv, JobsEnv):
    """The batch workers (functions/batch_s3: job files; functions/batch_sqs: queued requests and job
    continuations): the embeddings model, metering, tenants, jobs, the job bucket, chunking and the DLQ.
    The S3 worker takes the bucket from each event; the SQS worker writes request results to MAAS_JOB_BUCKET."""

    chunk_lines: int = Field(c.DEFAULT_CHUNK_LINES, alias=c.ENV_CHUNK_LINES, ge=1, le=1_000_000)
    max_chunks: int = Field(0, alias=c.ENV_MAX_CHUNKS, ge=0)
    continuation_queue_url: str | None = Field(None, alias=c.ENV_CONTINUATION_QUEUE_URL, min_length=8)
    dlq_url: str | None = Field(None, alias=c.ENV_DLQ_URL, min_length=8)
    max_receive_count: int = Field(c.DEFAULT_MAX_RECEIVE_COUNT, alias=c.ENV_MAX_RECEIVE_COUNT, ge=1, le=1000)
