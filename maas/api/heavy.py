"""Routes of the heavy-model proxy (functions/heavy_proxy): a SageMaker-served catalog model behind the same API.

    POST /v2/models/{name}[/versions/{v}]/infer   KServe v2 infer, forwarded to the endpoint (billed: tokens)
    GET  /v2/models/{name}[/versions/{v}]         model metadata, from the endpoint (not billed)
    GET  /v2/models/{name}[/versions/{v}]/ready   200 when the endpoint answers, 503 (in the error shape) if not
    POST /v1/embeddings                           OpenAI embeddings, forwarded (billed: tokens)

The same request and response contracts, authentication, quota pre-check, exactly-once metering and error shapes
(KServe v2's on the /v2 routes) as the Lambda-served routes: the body's shape is validated here (malformed JSON or
fields never reach the GPU), forwarded unchanged, checked tensor by tensor in the endpoint by the same code as the
Lambda route, and billed with the units the endpoint counted; nothing refused is billed. Endpoint failures map to
503 (maas.heavy.client).
"""

from __future__ import annotations

import base64
import logging
import re
from urllib.parse import unquote

from maas.api.metered import json_parser, metered
from maas.api.resolver import error_result, internal_error_result, proxy_result
from maas.api.routes import is_kserve_path
from maas.bodies import dumps
from maas.errors import ApiError, InvalidRequest, MethodNotAllowed, NotFound, ServiceUnavailable
from maas.heavy.client import BilledModel, HeavyEndpoint
from maas.inference.catalog import default_catalog
from maas.metering.charge import Billing
from maas.schemas.embeddings import EmbeddingsRequest
from maas.schemas.v2 import InferRequest
from maas.tasks.v2 import BINARY_HEADER, BINARY_REFUSAL
from maas.tasks.v2 import TASK as V2_TASK

MODEL_PATH = re.compile(r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?(?P<action>/infer|/ready)?$")
EMBEDDINGS_PATH = "/v1/embeddings"


class HeavyApi:
    """The function's API: call it with an API Gateway REST event and a Lambda context."""

    def __init__(self, endpoint: HeavyEndpoint, billing: Billing, logger: logging.Logger):
        self.endpoint, self.billing, self.logger = endpoint, billing, logger
        settings = endpoint.settings
        entry = default_catalog().resolve(settings.model_name)
        version = entry.version if entry is not None else "unknown"
        self.billed = {
            "v2-infer": BilledModel(settings.model_name, version, V2_TASK),
            "embeddings": BilledModel(settings.model_name, version, entry.task if entry else "embeddings"),
        }
        self.parse = {
            "v2-infer": json_parser(InferRequest, settings.max_body_bytes),
            "embeddings": json_parser(EmbeddingsRequest, settings.max_body_bytes),
        }

    def __call__(self, event: dict, context) -> dict:
        method, path = event.get("httpMethod"), event.get("path") or ""
        kserve = is_kserve_path(path)  # the model's /v2 routes answer errors in KServe v2's shape
        try:
            if path == EMBEDDINGS_PATH:
                if method != "POST":
                    raise MethodNotAllowed(f"{method} is not allowed on {path}; use POST.")
                return self._metered(event, "embeddings", {})
            m = MODEL_PATH.match(path)
            if m is None:
                raise NotFound(f"No route {method} {path} on this model's API.")
            name, version = unquote(m["name"]), unquote(m["version"]) if m["version"] else None
            attributes = {"model": name, "version": version}
            if m["action"] == "/infer":
                if method != "POST":
                    raise MethodNotAllowed(f"{method} is not allowed on {path}; use POST.")
                if any(k.lower() == BINARY_HEADER.lower() for k in event.get("headers") or {}):
                    # the endpoint takes JSON tensors only: say what to send instead, not billed, never forwarded
                    raise InvalidRequest(BINARY_REFUSAL, code="unsupported")
                return self._metered(event, "v2-infer", attributes)
            if method != "GET":
                raise MethodNotAllowed(f"{method} is not allowed on {path}; use GET.")
            answer = self.endpoint.invoke(b"", {"route": "v2-metadata", **attributes})
            if m["action"] == "/ready":
                return proxy_result(200, dumps({"name": name, "ready": True}))
            return proxy_result(200, answer.body.decode())
        except ApiError as err:
            # Not billed routes (metadata, readiness, unknown paths): not counted as failed requests either.
            self.logger.info("request refused", extra={"status": err.status, "code": err.code})
            return error_result(err, kserve=kserve)
        except Exception:
            self.logger.exception("unhandled error")
            return internal_error_result(kserve)

    def _metered(self, event: dict, route: str, attributes: dict) -> dict:
        # The endpoint counts the units: the call is fitted to the quota when it has answered.
        run = lambda _, reserve: (*self._forward(event, route, attributes), self.billed[route])  # noqa: E731
        kserve = route == "v2-infer"
        return metered(self.billing, event, self.parse[route], run, logger=self.logger, kserve=kserve)

    def _forward(self, event: dict, route: str, attributes: dict) -> tuple[str, int]:
        body = event.get("body") or ""
        raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode("utf-8")
        answer = self.endpoint.invoke(raw, {"route": route, **attributes})
        try:
            return answer.body.decode("utf-8"), answer.units
        except UnicodeDecodeError:
            raise ServiceUnavailable(
                "The model endpoint answered with a malformed body.", code="endpoint_failed"
            ) from None


def create_app(endpoint: HeavyEndpoint, billing: Billing, logger: logging.Logger) -> HeavyApi:
    return HeavyApi(endpoint, billing, logger)
