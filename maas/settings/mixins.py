"""Groups of environment variables that several functions read, each declared once.

A function's settings class (maas.settings.functions) lists the mixins it needs; a class narrows a field
(another default or bound) by declaring it again under the same alias.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, Json, field_validator, model_validator

from maas.settings import names as c
from maas.settings.base import EnvSettings
from maas.tables import JOBS, TENANTS, USAGE


class ModelEnv(EnvSettings):
    """Where the model package comes from and how its ONNX sessions run."""

    model_source: str = Field(c.DEFAULT_MODEL_SOURCE, alias=c.ENV_MODEL_SOURCE, min_length=1)
    model_cache_dir: Path = Field(Path(c.DEFAULT_MODEL_CACHE_DIR), alias=c.ENV_MODEL_CACHE_DIR)
    threads: int | None = Field(None, alias=c.ENV_THREADS, ge=1, le=64)
    batch_size: int = Field(c.DEFAULT_BATCH_SIZE, alias=c.ENV_BATCH_SIZE, ge=1, le=256)
    batch_tokens: int = Field(c.DEFAULT_BATCH_TOKENS, alias=c.ENV_BATCH_TOKENS, ge=16, le=65536)


def token_budget(memory_mb: int, tokens_per_vcpu_s: float = c.TOKENS_PER_VCPU_SECOND) -> int:
    """The tokens one request may run on a function of ``memory_mb``: what its CPU share (memory / 1,769 MB of a
    vCPU) runs at ``tokens_per_vcpu_s`` within half of API Gateway's 29 s, rounded down to a thousand."""
    seconds = c.GATEWAY_TIMEOUT_S / c.BUDGET_MARGIN
    tokens = tokens_per_vcpu_s * memory_mb / c.LAMBDA_MB_PER_VCPU * seconds
    return max(1000, int(tokens // 1000 * 1000))


class LimitsEnv(EnvSettings):
    """Bounds on one request: inputs, body size, and the tokens the model may run (``request_token_budget``)."""

    max_inputs: int = Field(c.DEFAULT_MAX_INPUTS, alias=c.ENV_MAX_INPUTS, ge=1, le=2048)
    max_body_bytes: int = Field(c.DEFAULT_MAX_BODY_BYTES, alias=c.ENV_MAX_BODY_BYTES, ge=1024, le=10 * 1024 * 1024)
    max_request_tokens: int | None = Field(None, alias=c.ENV_MAX_REQUEST_TOKENS, ge=256, le=10_000_000)
    memory_mb: int = Field(c.DEFAULT_FUNCTION_MEMORY_MB, alias=c.ENV_LAMBDA_MEMORY_MB, ge=128, le=10240)

    @property
    def request_token_budget(self) -> int:
        """MAAS_MAX_REQUEST_TOKENS, or the budget of the function's memory (``token_budget``)."""
        return self.max_request_tokens or token_budget(self.memory_mb)


class PlansEnv(EnvSettings):
    """The plans (prices, quotas): the packaged plans.toml unless a file overrides it."""

    plans_file: Path | None = Field(None, alias=c.ENV_PLANS_FILE)


class MeteringEnv(PlansEnv):
    """Billing against the usage table; metering is on unless explicitly switched off."""

    usage_table: str | None = Field(None, alias=USAGE.env_var, min_length=3)
    # "off" only for benchmarking the bare handler: production always meters.
    metering: Literal["on", "off"] = Field("on", alias=c.ENV_METERING)

    @model_validator(mode="after")
    def _metering_needs_a_table(self):
        if self.metering == "on" and not self.usage_table:
            raise ValueError(f"{USAGE.env_var} is required when metering is on ({c.ENV_METERING}=off disables it)")
        return self


class TenancyEnv(EnvSettings):
    """The tenants table (who may call, on which plan)."""

    tenants_table: str = Field(alias=TENANTS.env_var, min_length=3)


class JobsEnv(EnvSettings):
    """The jobs table and where results are written; the bucket is optional here (the S3 worker takes it from
    each event), required where a function presigns URLs."""

    jobs_table: str = Field(alias=JOBS.env_var, min_length=3)
    job_bucket: str | None = Field(None, alias=c.ENV_JOB_BUCKET, min_length=3)
    results_prefix: str = Field(c.DEFAULT_RESULTS_PREFIX, alias=c.ENV_RESULTS_PREFIX, pattern=r"^[a-z0-9-]+/$")


class HeavyEndpointEnv(EnvSettings):
    """One SageMaker endpoint serving one catalog model, and the time bounds of a call to it."""

    endpoint_name: str = Field(alias=c.ENV_SAGEMAKER_ENDPOINT, min_length=1, max_length=63)
    inference_component: str | None = Field(None, alias=c.ENV_INFERENCE_COMPONENT, min_length=1)
    model_name: str = Field(alias=c.ENV_MODEL_NAME, min_length=1)
    runtime_url: str | None = Field(None, alias=c.ENV_SAGEMAKER_RUNTIME_URL, pattern=r"^https?://")
    timeout_s: float = Field(c.DEFAULT_ENDPOINT_TIMEOUT_S, alias=c.ENV_ENDPOINT_TIMEOUT_S, gt=0, le=60)
    attempts: int = Field(c.DEFAULT_ENDPOINT_ATTEMPTS, alias=c.ENV_ENDPOINT_ATTEMPTS, ge=1, le=5)


class HeavyModelSpec(BaseModel):
    """Where one SageMaker-served catalog model answers."""

    endpoint: str
    component: str | None = None


class HeavyModelsEnv(EnvSettings):
    """The SageMaker-served models a function forwards to (JSON: catalog name -> {"endpoint", "component"?})."""

    heavy_models: Json[dict[str, HeavyModelSpec]] | None = Field(None, alias=c.ENV_HEAVY_MODELS)

    @field_validator("heavy_models", mode="before")
    @classmethod
    def _empty_is_none(cls, value):
        return value or None
