"""The heavy-model proxy's client: InvokeEndpoint with bounded time, and every failure as an API error.

    endpoint missing (not deployed, deleted)            -> 503 endpoint_missing
    cold (scaled to zero, loading, no capacity)          -> 503 endpoint_cold, Retry-After
    failing (5xx from the container, 5xx/throttling from
    the service, timeouts, connection errors)            -> 503 endpoint_failed / endpoint_timeout
    a 4xx the container answered in the error shape      -> that status and error, unchanged
    payload over InvokeEndpoint's limit                  -> 413 (checked before the call)

Time is bounded: connect timeout 2 s, read timeout MAAS_ENDPOINT_TIMEOUT_S, MAAS_ENDPOINT_ATTEMPTS attempts in
botocore's standard retry mode (throttling, 5xx and connection errors only; a ModelError is never retried), so
the worst case stays under API Gateway's 29 s integration timeout with the defaults (2 x 12 s).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

from maas.errors import ApiError, ServiceUnavailable
from maas.heavy.attributes import format_attributes, parse_attributes
from maas.settings import names as c
from maas.settings.mixins import HeavyEndpointEnv, HeavyModelsEnv

CONNECT_TIMEOUT_S = 2.0
COLD_RETRY_AFTER_S = 60


class EndpointCold(ServiceUnavailable):
    code = "endpoint_cold"
    headers = {"Retry-After": str(COLD_RETRY_AFTER_S)}


@dataclass
class EndpointAnswer:
    body: bytes
    units: int


def make_client(settings: HeavyEndpointEnv):
    import boto3  # only the proxy imports boto3 (Lambda's runtime has it)
    from botocore.config import Config

    config = Config(
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=settings.timeout_s,
        retries={"mode": "standard", "total_max_attempts": settings.attempts},
        tcp_keepalive=True,
    )
    return boto3.client("sagemaker-runtime", endpoint_url=settings.runtime_url, config=config)


def _passed_on(status: int, original: str | None) -> ApiError | None:
    """The container's own 4xx error (our error shape) as an ApiError with its status; None if it is not one."""
    try:
        error = json.loads(original or "")["error"]
        message, type_, code = error["message"], error["type"], error["code"]
    except (ValueError, TypeError, KeyError):
        return None
    err = ApiError(str(message), code=str(code), param=error.get("param"))
    err.status, err.type = status, str(type_)
    return err


class HeavyEndpoint:
    """One SageMaker endpoint (and inference component) serving one catalog model."""

    def __init__(self, settings: HeavyEndpointEnv, client=None, logger: logging.Logger | None = None):
        self.settings = settings
        # made at init, with the function's environment (region, credentials); every function that forwards
        # also meters, so boto3 is imported there anyway
        self.client = client or make_client(settings)
        self.logger = logger or logging.getLogger(__name__)

    def invoke(self, body: bytes, attributes: Mapping[str, object]) -> EndpointAnswer:
        from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError

        s = self.settings
        kwargs = dict(
            EndpointName=s.endpoint_name,
            Body=body,
            ContentType="application/json",
            Accept="application/json",
            CustomAttributes=format_attributes(attributes),
        )
        if s.inference_component:
            kwargs["InferenceComponentName"] = s.inference_component
        try:
            response = self.client.invoke_endpoint(**kwargs)
            payload = response["Body"].read()
        except ClientError as exc:
            raise self._client_error(exc) from None
        except (ReadTimeoutError, ConnectTimeoutError):
            self.logger.warning("endpoint timed out", extra={"endpoint": s.endpoint_name})
            raise ServiceUnavailable(
                f"The model endpoint did not answer within {s.timeout_s:g} s ({s.attempts} attempt(s)). Retry later.",
                code="endpoint_timeout",
            ) from None
        except BotoCoreError as exc:  # connection refused or reset, DNS, ...
            self.logger.warning("endpoint unreachable", extra={"endpoint": s.endpoint_name, "reason": str(exc)})
            raise ServiceUnavailable(
                "The model endpoint cannot be reached. Retry later.", code="endpoint_unreachable"
            ) from None
        units = parse_attributes(response.get("CustomAttributes")).get("units", "")
        if not units.isdigit():
            # billing needs the endpoint's count; an answer without it is a broken endpoint, not a free call
            self.logger.error("endpoint answer without units", extra={"endpoint": s.endpoint_name})
            raise ServiceUnavailable("The model endpoint answered without usage; retry later.", code="endpoint_failed")
        return EndpointAnswer(payload, int(units))

    def _client_error(self, exc) -> ApiError:
        response = exc.response
        code = response.get("Error", {}).get("Code", "")
        message = response.get("Error", {}).get("Message", "")
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        name = self.settings.endpoint_name
        self.logger.warning("endpoint error", extra={"endpoint": name, "code": code, "status": status})
        if code == "ModelError":
            original = response.get("OriginalStatusCode")
            if isinstance(original, int) and 400 <= original < 500:
                passed = _passed_on(original, response.get("OriginalMessage"))
                if passed is not None:
                    return passed
            return ServiceUnavailable(
                f"The model endpoint failed on this request (status {original}). Retry later.", code="endpoint_failed"
            )
        if code == "ModelNotReadyException" or (code == "ValidationError" and "capacity" in message.lower()):
            return EndpointCold(
                f"The model endpoint is starting (scaled to zero or loading); retry in about {COLD_RETRY_AFTER_S} s."
            )
        if code == "ValidationError" and "not found" in message.lower():
            return ServiceUnavailable(
                f"The model endpoint '{name}' does not exist (not deployed, or deleted).", code="endpoint_missing"
            )
        return ServiceUnavailable(f"The model endpoint failed ({code or status}). Retry later.", code="endpoint_failed")


class BilledModel:
    """What a usage event records of a model served elsewhere (the endpoint holds the package; the catalog names
    it): the same name, version and task attributes a Manifest has."""

    def __init__(self, name: str, version: str, task: str):
        self.name, self.version, self.task = name, version, task


def remote_models(environ: Mapping[str, str] | None = None, logger: logging.Logger | None = None) -> dict:
    """The SageMaker-served models another function forwards to, from MAAS_HEAVY_MODELS (JSON: catalog name ->
    {"endpoint": NAME, "component": NAME?}) and the proxy's time-bound variables: name -> HeavyEndpoint. Only the
    endpoint's variables are read here; the forwarding function's own settings validate its metering and limits."""
    environ = os.environ if environ is None else environ
    specs = HeavyModelsEnv.from_env(environ).heavy_models or {}
    endpoints = {}
    for name, spec in specs.items():
        values = {**environ, c.ENV_MODEL_NAME: name, c.ENV_SAGEMAKER_ENDPOINT: spec.endpoint}
        if spec.component:
            values[c.ENV_INFERENCE_COMPONENT] = spec.component
        endpoints[name] = HeavyEndpoint(HeavyEndpointEnv.from_env(values), logger=logger)
    return endpoints


class RemoteEmbedder:
    """``TextEmbedder.embed`` on a heavy model's endpoint, for batch jobs and queued requests: the texts go in
    slices that keep every InvokeEndpoint request and answer well under its 6 MiB (at most ``max_texts`` texts
    and ``max_bytes`` of JSON per call); vectors, token counts and truncation come back per text."""

    def __init__(self, endpoint: HeavyEndpoint, max_texts: int = 256, max_bytes: int = 2 * 1024 * 1024):
        self.endpoint, self.max_texts, self.max_bytes = endpoint, max_texts, max_bytes
        self.dimensions = 0  # learnt from the first answer

    def slices(self, texts: list[str]) -> list[list[str]]:
        out, current, size = [], [], 0
        for text in texts:
            cost = len(json.dumps(text)) + 1
            if current and (len(current) >= self.max_texts or size + cost > self.max_bytes):
                out.append(current)
                current, size = [], 0
            current.append(text)
            size += cost
        return out + ([current] if current else [])

    def embed(self, texts: list[str], encodings=None):
        import base64

        import numpy as np

        from maas.inference.embedder import Embeddings

        vectors, tokens, truncated = [], [], []
        for part in self.slices(texts):
            answer = self.endpoint.invoke(json.dumps({"input": part}).encode(), {"route": "embed-batch"})
            body = json.loads(answer.body)
            self.dimensions = int(body["dimensions"])
            rows = np.frombuffer(base64.b64decode(body["vectors"]), dtype="<f4").reshape(len(part), self.dimensions)
            vectors.append(rows)
            tokens += body["tokens"]
            truncated += body["truncated"]
        matrix = np.concatenate(vectors) if vectors else np.empty((0, self.dimensions), np.float32)
        return Embeddings(matrix.astype(np.float32), tokens, truncated)
