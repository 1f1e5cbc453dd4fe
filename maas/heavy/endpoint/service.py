"""The heavy-model inference package: what runs inside the SageMaker endpoint's container.

It loads the same model package format as the Lambda functions (every file checked against its sha256), on
onnxruntime's CUDA provider when a GPU is there and the CPU provider otherwise, and answers the same request
and response contracts as the Lambda routes, so the proxy forwards bodies unchanged:

    route embeddings    OpenAI `POST /v1/embeddings` body  -> OpenAI response (usage = billable tokens)
    route v2-infer      KServe v2 infer body               -> KServe v2 response (billable units = tokens)
    route v2-metadata   (no body)                          -> KServe v2 model metadata
    route embed-batch   {"input": [texts]}                 -> {"dimensions", "vectors" (base64 little-endian
                        (batch jobs: maas.heavy.client.RemoteEmbedder)  float32, row-major), "tokens", "truncated"}

The route and the path's model name/version travel in SageMaker's CustomAttributes (`route=v2-infer;
model=NAME;version=V`); the billable units come back in the response's CustomAttributes (`units=N`), computed
here from the tokenizer's own count, so the proxy meters what the model really processed. Errors are the API's
one error shape with their 4xx status; the proxy passes them on.

Concurrent embeddings requests are merged by a dynamic batcher (maas.heavy.endpoint.batcher); v2 tensors run as
given (their shapes are the client's).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field

from maas.bodies import dumps, parse_json, require_json, utf8_text
from maas.errors import ApiError, NotFound, ServiceUnavailable, internal_error_body
from maas.heavy.endpoint.batcher import BatchingEmbedder
from maas.inference.validation import text_list, tokenize_checked
from maas.schemas.embeddings import EmbeddingsRequest
from maas.schemas.endpoint import EmbedBatchRequest
from maas.schemas.v2 import InferRequest
from maas.settings import names as c
from maas.settings.base import EnvSettings, SettingsError
from maas.settings.functions import EmbeddingsSettings
from maas.tasks.embeddings import EmbeddingsService
from maas.tasks.v2 import V2Service

MAX_POSITIONS = 512  # BERT-family positions: no heavy package reads longer inputs
ROUTES = ("embeddings", "embed-batch", "v2-infer", "v2-metadata")
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


class EndpointSettings(EnvSettings):
    """The container's settings (environment variables; SageMaker sets them from the model's Environment). Its
    own bounds, not the Lambda mixins': a GPU container takes more threads, inputs and batch tokens."""

    model_source: str = Field(c.SAGEMAKER_MODEL_DIR, alias=c.ENV_MODEL_SOURCE, min_length=1)
    device: Literal["auto", "cuda", "cpu"] = Field("auto", alias=c.ENV_DEVICE)
    threads: int | None = Field(None, alias=c.ENV_THREADS, ge=1, le=256)
    max_inputs: int = Field(c.DEFAULT_MAX_INPUTS, alias=c.ENV_MAX_INPUTS, ge=1, le=4096)
    # InvokeEndpoint takes request payloads up to 6 MB on real-time endpoints.
    max_body_bytes: int = Field(
        c.ENDPOINT_MAX_PAYLOAD_BYTES, alias=c.ENV_MAX_BODY_BYTES, ge=1024, le=c.ENDPOINT_MAX_PAYLOAD_BYTES
    )
    # A GPU wants big batches: up to 256 texts and 64k padded tokens per session.run (CPU: the Lambda defaults).
    batch_size: int | None = Field(None, alias=c.ENV_BATCH_SIZE, ge=1, le=1024)
    batch_tokens: int | None = Field(None, alias=c.ENV_BATCH_TOKENS, ge=16, le=1 << 20)
    batch_wait_ms: float = Field(0.0, alias=c.ENV_BATCH_WAIT_MS, ge=0, le=100)
    # off: each request runs its own session.run, concurrently (the baseline the batcher is measured against)
    batching: bool = Field(True, alias=c.ENV_BATCHING)


def choose_providers(device: str) -> list:
    """Execution providers for ``device``: CUDA first when asked for (or `auto` and the build has it)."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "cpu" or (device == "auto" and CUDA not in available):
        return [CPU]
    if CUDA not in available:
        raise SettingsError(
            f"{c.ENV_DEVICE}=cuda, but this onnxruntime has no CUDA provider (install onnxruntime-gpu); "
            f"available: {', '.join(available)}"
        )
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:  # CUDA and cuDNN from their pip wheels (onnxruntime-gpu[cuda,cudnn]) or from torch's
        try:
            preload()
        except Exception:  # a missing library shows when the session is made: it then runs on CPU, and says so
            pass
    return [(CUDA, {"device_id": 0, "cudnn_conv_algo_search": "HEURISTIC"}), CPU]


@dataclass
class Answer:
    status: int
    body: bytes
    units: int = 0


class EndpointService:
    """Model loaded once per container; ``invoke`` answers one request of one route."""

    def __init__(self, settings: EndpointSettings, logger: logging.Logger | None = None):
        self.settings = settings
        self.logger = logger or logging.getLogger("maas.heavy.endpoint")
        self.providers = choose_providers(settings.device)
        gpu = self.providers[0] != CPU
        self.embeddings = EmbeddingsService(
            EmbeddingsSettings(
                model_source=settings.model_source,
                threads=settings.threads,
                max_inputs=settings.max_inputs,
                max_body_bytes=settings.max_body_bytes,
                # Not the Lambda CPU budget: a GPU runs 128 x 512 tokens in ~86 ms (README), so its largest request
                # (max_inputs x 512 tokens) is far inside API Gateway's 29 s; the input limits bound it.
                max_request_tokens=settings.max_inputs * MAX_POSITIONS,
                batch_size=settings.batch_size or (256 if gpu else c.DEFAULT_BATCH_SIZE),
                batch_tokens=settings.batch_tokens or (65536 if gpu else c.DEFAULT_BATCH_TOKENS),
                metering="off",  # the proxy meters; the endpoint reports units
            ),
            self.logger,
            providers=self.providers,
            wrap=(
                lambda embedder: BatchingEmbedder(
                    embedder, max_texts=max(settings.max_inputs, 256), max_wait_s=settings.batch_wait_ms / 1000
                )
            )
            if settings.batching
            else None,
        )
        # The proxy passes the endpoint's answer on as JSON text: binary outputs are refused with what to send instead
        self.v2 = V2Service(self.embeddings, settings.max_inputs, binary_outputs=False)

    @property
    def device(self) -> str:
        """The provider the session really runs on (CUDA can be compiled in and still fall back to CPU)."""
        embedder = self.embeddings.embedder
        return embedder.session.get_providers()[0] if embedder is not None else "none"

    def ping(self) -> bool:
        return self.v2.ready()

    def invoke(self, body: bytes, attributes: Mapping[str, str], content_type: str | None = None) -> Answer:
        try:
            route = attributes.get("route", "embeddings")
            if route not in ROUTES:
                raise NotFound(f"Unknown route '{route}'; this endpoint answers {', '.join(ROUTES)}.")
            if route == "v2-metadata":
                return Answer(200, dumps(self.v2.metadata(*self._model(attributes))).encode())
            require_json(content_type)
            text, limit = utf8_text(body), self.settings.max_body_bytes
            if route == "embed-batch":
                request = parse_json(text, EmbedBatchRequest, limit)
                texts = text_list(request.input, "input", self.settings.max_inputs)
                embedder = self.embeddings.ready()
                result = embedder.embed(texts, tokenize_checked(embedder, texts, True, "input"))
                vectors = np.ascontiguousarray(result.vectors, dtype="<f4")
                body = {
                    "dimensions": int(vectors.shape[1]),
                    "vectors": base64.b64encode(vectors.tobytes()).decode("ascii"),
                    "tokens": [int(n) for n in result.token_counts],
                    "truncated": result.truncated,
                }
                return Answer(200, dumps(body).encode(), int(sum(result.token_counts)))
            if route == "embeddings":
                request = parse_json(text, EmbeddingsRequest, limit)
                result = self.embeddings.embed(request)
                return Answer(200, dumps(result).encode(), result["usage"]["prompt_tokens"])
            request = parse_json(text, InferRequest, limit)
            name, version = self._model(attributes)
            result, tokens, _ = self.v2.infer(name, request, version)
            return Answer(200, dumps(result).encode(), tokens)
        except ApiError as err:
            return self._error(err)
        except Exception:
            self.logger.exception("unhandled error")
            return Answer(500, dumps(internal_error_body()).encode())

    def _model(self, attributes: Mapping[str, str]) -> tuple[str, str | None]:
        manifest = self.embeddings.manifest
        if manifest is None:
            raise ServiceUnavailable("The model is not loaded (the reason is logged).")
        return attributes.get("model") or manifest.name, attributes.get("version") or None

    def _error(self, err: ApiError) -> Answer:
        return Answer(err.status, dumps(err.body()).encode())
