"""The deployment's one typed configuration: `infra/config.json` (or `-c maas:config=PATH`) plus CDK context keys.

Context keys (from cdk.json or `-c key=value`; command-line values are strings and are parsed here):

    maas:config               path of the configuration file (default infra/config.json)
    maas:region               region of both stacks
    maas:account              account id (optional; without it the stacks are account-agnostic)
    maas:models               comma-separated subset of the catalog to deploy
    maas:plans                comma-separated subset of the plans in maas/data/plans.toml
    maas:architecture         x86_64 | arm64 for every function
    maas:memory               memory (MB) of every task function
    maas:gpuInstanceType      instance type of every SageMaker model
    maas:gpuMinCapacity       minimum capacity of every SageMaker model (0 = scale to zero)
    maas:requireBuiltAssets   true: a missing layer, model or function is a synth error (deploy scripts set it)

Synth reads only these files: no network calls, no account lookups.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from maas.settings import names as constants
from maas.tenancy import plans as runtime_plans
from maas.tenancy.plans import Plan
from maas.tools.paths import REPO_ROOT

DEFAULT_CONFIG = REPO_ROOT / "infra" / "config.json"
PLANS_FILE = REPO_ROOT / "maas" / "data" / "plans.toml"
CTX = "maas:"
NAME = r"^[a-z0-9][a-z0-9-]{0,62}$"

Task = Literal["embeddings", "classify", "image-classify", "rerank"]
Architecture = Literal["x86_64", "arm64"]
PythonVersion = Literal["3.12", "3.13", "3.14"]
# Functions that serve the embeddings model's package on other routes (catalog.toml `tasks_also`, and v2).
EMBEDDING_ROUTES = ("rerank", "v2")


class ConfigError(Exception):
    """The configuration is invalid; the message names the field or context key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FunctionConfig(_Strict):
    """How one Lambda function runs."""

    memory_mb: Annotated[int, Field(ge=128, le=10240)] = 1024
    architecture: Architecture = "x86_64"
    timeout_s: Annotated[int, Field(ge=1, le=900)] = 29
    reserved_concurrency: Annotated[int, Field(ge=1)] | None = None
    provisioned_concurrency: Annotated[int, Field(ge=0)] = 0
    snap_start: bool = False

    @model_validator(mode="after")
    def _snap_start_alone(self):
        if self.snap_start and self.provisioned_concurrency:
            raise ValueError("snap_start and provisioned_concurrency cannot be combined on one function")
        if self.reserved_concurrency is not None and self.provisioned_concurrency > self.reserved_concurrency:
            raise ValueError("provisioned_concurrency cannot exceed reserved_concurrency")
        return self


class SageMakerConfig(_Strict):
    """A GPU endpoint for a model too large or too slow for Lambda."""

    instance_type: str = "ml.g5.xlarge"
    # 0 scales to zero (inference components with managed instance scaling); >= 1 keeps a classic endpoint.
    min_capacity: Annotated[int, Field(ge=0)] = 0
    max_capacity: Annotated[int, Field(ge=1)] = 2
    # Target of the invocations-per-instance (per copy with scale to zero) tracking policy, per minute.
    target_invocations_per_minute: Annotated[int, Field(ge=1)] = 600
    # The heavy-model inference image; `{region}` is replaced by the stack's region at deploy time.
    image_uri: str = "763104351884.dkr.ecr.{region}.amazonaws.com/pytorch-inference:2.6.0-gpu-py312-cu124-ubuntu22.04"
    accelerators: Annotated[int, Field(ge=1)] = 1
    memory_required_mb: Annotated[int, Field(ge=256)] = 4096

    @field_validator("instance_type")
    @classmethod
    def _instance_type(cls, value: str) -> str:
        if not value.startswith("ml."):
            raise ValueError(f"SageMaker instance types start with 'ml.', got {value!r}")
        return value

    @model_validator(mode="after")
    def _bounds(self):
        if self.max_capacity < self.min_capacity:
            raise ValueError("max_capacity must be at least min_capacity")
        return self


class ModelConfig(_Strict):
    """One catalog entry: which package serves which task, and where it runs."""

    name: Annotated[str, Field(pattern=NAME)]
    task: Task
    runtime: Literal["layer", "s3", "sagemaker"] = "layer"
    # Folder under models/ holding the package; defaults to the model's name.
    package: Annotated[str, Field(pattern=NAME)] | None = None
    version: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]+$")] = "1"
    sagemaker: SageMakerConfig | None = None

    @property
    def package_name(self) -> str:
        return self.package or self.name

    @model_validator(mode="before")
    @classmethod
    def _sagemaker_settings(cls, data):
        if isinstance(data, dict):
            runtime = data.get("runtime", "layer")
            if runtime == "sagemaker" and data.get("sagemaker") is None:
                data = {**data, "sagemaker": {}}
            elif runtime != "sagemaker" and data.get("sagemaker") is not None:
                raise ValueError(f"model {data.get('name')}: 'sagemaker' settings need runtime 'sagemaker'")
        return data


class AlarmConfig(_Strict):
    email: str | None = None  # subscribed to the alarm topic when set
    api_5xx_per_5_min: Annotated[int, Field(ge=1)] = 5
    api_p99_latency_ms: Annotated[int, Field(ge=1)] = 2000
    function_errors_per_5_min: Annotated[int, Field(ge=1)] = 5


class Config(_Strict):
    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")] = "us-east-1"
    account: Annotated[str, Field(pattern=r"^\d{12}$")] | None = None
    python: PythonVersion = "3.14"
    stage_name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_]+$")] = "prod"
    plans: tuple[str, ...] | None = None  # None: every plan in plans.toml
    models: tuple[ModelConfig, ...]
    # One function per task; tasks without an entry use the defaults.
    tasks: dict[Task, FunctionConfig] = Field(default_factory=dict)
    authorizer: FunctionConfig = FunctionConfig(memory_mb=256, timeout_s=10)
    heavy_proxy: FunctionConfig = FunctionConfig(memory_mb=256)
    batch_s3: FunctionConfig = FunctionConfig(timeout_s=900)
    batch_sqs: FunctionConfig = FunctionConfig(timeout_s=120)
    # The failed-events consumer (maas.jobs.failures): one conditional job update and one SQS send per failed event.
    failed_events: FunctionConfig = FunctionConfig(memory_mb=256, timeout_s=30)
    # The usage table's stream consumer (maas.metering.aggregator): a few DynamoDB calls per batch of events.
    aggregator: FunctionConfig = FunctionConfig(memory_mb=256, timeout_s=60)
    # True: API Gateway caches the authorizer's verdict for constants.AUTHORIZER_CACHE_TTL_S keyed on the
    # Authorization header (the one header the authorizer then decides from); a request with only x-api-key is
    # answered 401 by the gateway. False: the authorizer runs on every call and x-api-key alone works too.
    authorizer_cache: bool = True
    # The REST API alone, or beside it a Lambda function URL (auth NONE) per API-facing function with the key
    # checked in the function (maas.tenancy.frontdoor); infra/README.md says what that door gives up.
    front_door: Literal["rest", "function_url"] = "rest"
    max_body_bytes: Annotated[int, Field(ge=1024, le=10 * 1024 * 1024)] = constants.DEFAULT_MAX_BODY_BYTES
    max_inputs: Annotated[int, Field(ge=1, le=2048)] = constants.DEFAULT_MAX_INPUTS
    stage_rate_limit: Annotated[float, Field(gt=0)] = 1000
    stage_burst_limit: Annotated[int, Field(ge=1)] = 2000
    public_docs_rate_limit: Annotated[float, Field(gt=0)] = 5
    log_retention_days: Literal[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365] = 30
    log_level: Literal["DEBUG", "INFO", "WARN", "ERROR"] = "INFO"
    # X-Ray active tracing for the functions (Powertools Tracer) and the API stage, sampled at the API by an X-Ray
    # rule: `tracing_reservoir_per_s` calls each second, then `tracing_rate` of the rest ($5 per million traces).
    tracing: bool = True
    tracing_reservoir_per_s: Annotated[int, Field(ge=0)] = 0
    tracing_rate: Annotated[float, Field(ge=0, le=1)] = 0.001
    sqs_batch_size: Annotated[int, Field(ge=1, le=10)] = 10
    sqs_max_receive_count: Annotated[int, Field(ge=1, le=1000)] = 3
    job_retention_days: Annotated[int, Field(ge=1)] = 30
    alarms: AlarmConfig = AlarmConfig()
    require_built_assets: bool = False

    @model_validator(mode="after")
    def _catalog(self):
        ids = [f"{m.name}@{m.version}" for m in self.models]
        if len(set(ids)) != len(ids):
            raise ValueError(f"model versions must be unique: {ids}")
        packages = [m.package_name for m in self.models]
        if len(set(packages)) != len(packages):
            raise ValueError(f"each model version needs its own package folder ('package'): {packages}")
        if not self.models:
            raise ValueError("the catalog needs at least one model")
        sagemaker = [m.name for m in self.sagemaker_models]
        if len(set(sagemaker)) != len(sagemaker):
            raise ValueError(f"one version per SageMaker-served model (one endpoint each): {sagemaker}")
        for task in {m.task for m in self.lambda_models}:
            served = sorted({m.name for m in self.lambda_models if m.task == task})
            if len(served) > 1 and task != "classify":
                raise ValueError(
                    f"task {task}: one Lambda-served model per task function (any number of its versions), got {served}"
                )
        if self.classifier_models and self.embedding_model is None:
            raise ValueError("task classify needs a Lambda-served embeddings model too (zero-shot classification)")
        return self

    @property
    def embedding_model(self) -> ModelConfig | None:
        """The Lambda-served embeddings model (its first listed version: the latest); rerank and v2 serve it too
        (catalog.toml `tasks_also`)."""
        return next((m for m in self.lambda_models if m.task == "embeddings"), None)

    def versions(self, model: ModelConfig) -> tuple[ModelConfig, ...]:
        """Every listed version of ``model``'s name on its runtime, ``model`` first: a task function loads them all,
        so `name@version` keeps answering until the version leaves the configuration."""
        others = tuple(m for m in self.models if m.name == model.name and m is not model and m.runtime == model.runtime)
        return (model, *others)

    @property
    def classifier_models(self) -> tuple[ModelConfig, ...]:
        """Trained classifier packages, loaded by the classify function next to the embedding model."""
        return tuple(m for m in self.lambda_models if m.task == "classify")

    @property
    def lambda_models(self) -> tuple[ModelConfig, ...]:
        return tuple(m for m in self.models if m.runtime != "sagemaker")

    @property
    def sagemaker_models(self) -> tuple[ModelConfig, ...]:
        return tuple(m for m in self.models if m.runtime == "sagemaker")

    @property
    def lambda_tasks(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m.task for m in self.lambda_models))

    def task_function(self, task: str) -> FunctionConfig:
        """A task's function settings; rerank and v2 run the embedding model, so they default to its settings."""
        if task in self.tasks:
            return self.tasks[task]
        if task in EMBEDDING_ROUTES:
            return self.tasks.get("embeddings", FunctionConfig())
        return FunctionConfig()

    @property
    def architectures(self) -> tuple[str, ...]:
        """Every architecture a function that carries the runtime layer uses (one runtime layer each)."""
        served = self.lambda_tasks + (EMBEDDING_ROUTES if self.embedding_model is not None else ())
        functions = [self.task_function(t) for t in served] + [
            self.authorizer,
            self.batch_s3,
            self.batch_sqs,
            self.aggregator,
            self.failed_events,
        ]
        if self.sagemaker_models:
            functions.append(self.heavy_proxy)
        return tuple(sorted({f.architecture for f in functions}))


def load_plans(path: Path = PLANS_FILE, only: tuple[str, ...] | None = None) -> tuple[Plan, ...]:
    """The plans the runtime reads (maas.tenancy.plans, maas/data/plans.toml), optionally a subset, in file order."""
    try:
        plans = tuple(runtime_plans.load_plans(path).values())
    except runtime_plans.PlansError as exc:
        raise ConfigError(str(exc)) from None
    if only is not None:
        unknown = sorted(set(only) - {p.name for p in plans})
        if unknown:
            raise ConfigError(f"unknown plans {unknown}; {path} defines {[p.name for p in plans]}")
        plans = tuple(p for p in plans if p.name in only)
    if not plans:
        raise ConfigError(f"no plans selected from {path}")
    return plans


def _bool(value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "1", "yes"}:
        return True
    if text in {"false", "0", "no", ""}:
        return False
    raise ConfigError(f"expected true or false, got {value!r}")


def _names(value) -> tuple[str, ...]:
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    return tuple(str(i).strip() for i in items if str(i).strip())


def _apply_context(data: dict, context: Mapping[str, object]) -> dict:
    """Overlay the individual `maas:*` context keys on the file's settings."""
    data = json.loads(json.dumps(data))  # deep copy
    get = context.get
    if (region := get(CTX + "region")) is not None:
        data["region"] = str(region)
    if (account := get(CTX + "account")) is not None:
        data["account"] = str(account) or None
    if (plans := get(CTX + "plans")) is not None:
        data["plans"] = list(_names(plans))
    if (models := get(CTX + "models")) is not None:
        wanted = _names(models)
        known = [m.get("name") for m in data.get("models", [])]
        unknown = sorted(set(wanted) - set(known))
        if unknown:
            raise ConfigError(f"{CTX}models names unknown models {unknown}; the catalog has {known}")
        data["models"] = [m for m in data.get("models", []) if m.get("name") in wanted]
    tasks = {m.get("task") for m in data.get("models", []) if m.get("runtime", "layer") != "sagemaker"}
    tasks |= set(data.get("tasks", {}))  # explicit entries too (rerank, v2 may have their own)

    def context(key: str, convert):
        """A context override converted, or None when not given; a bad value is a ConfigError naming it."""
        value = get(CTX + key)
        if value is None:
            return None
        try:
            return convert(value)
        except ValueError:
            raise ConfigError(f"{CTX}{key}: not a valid value: {value!r}") from None

    for key, field, convert in (("architecture", "architecture", str), ("memory", "memory_mb", int)):
        if (value := context(key, convert)) is None:
            continue
        for task in tasks:
            data.setdefault("tasks", {}).setdefault(task, {})[field] = value
        if field == "architecture":
            for fn in ("authorizer", "heavy_proxy", "batch_s3", "batch_sqs", "aggregator", "failed_events"):
                data.setdefault(fn, {})[field] = value
    for key, field, convert in (("gpuInstanceType", "instance_type", str), ("gpuMinCapacity", "min_capacity", int)):
        if (value := context(key, convert)) is None:
            continue
        for model in data.get("models", []):
            if model.get("runtime") == "sagemaker":
                model.setdefault("sagemaker", {})[field] = value
    if (required := get(CTX + "requireBuiltAssets")) is not None:
        data["require_built_assets"] = _bool(required)
    return data


def load_config(context: Mapping[str, object] | None = None, root: Path = REPO_ROOT) -> Config:
    """Read the configuration file named by `maas:config` (default infra/config.json) and apply context keys."""
    context = context or {}
    path = Path(str(context.get(CTX + "config") or DEFAULT_CONFIG))
    if not path.is_absolute():
        path = root / path
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} not found (context {CTX}config)") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: invalid JSON: {exc}") from None
    data.pop("$comment", None)
    try:
        return Config.model_validate(_apply_context(data, context))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: {problems}") from None
