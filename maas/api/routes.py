"""The API's one route table: method + path -> the function that answers it, whether the authorizer is in front,
and the body model API Gateway checks. Read by infra (API Gateway resources and methods), `maas serve` and
`maas invoke` (which function an event goes to) and the OpenAPI document (which modules describe the routes);
tests/infra/test_routes.py fails if any of them has a route the table has not, or the other way round.

Paths are API Gateway resource paths: a `{name}` segment is a path parameter; a static segment wins over a
parameter beside it (a heavy model's `/v2/models/<name>` over `/v2/models/{model_name}`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

from pydantic import BaseModel

from maas.schemas.classify import ClassifyRequest
from maas.schemas.embeddings import EmbeddingsRequest, FeatureExtractionRequest
from maas.schemas.rerank import RerankRequest, RerankV2Request
from maas.settings.names import DEFAULT_MAX_DOCUMENTS


@dataclass(frozen=True)
class Route:
    """One API Gateway resource + method and the function (functions/<function>/app.py) behind it."""

    method: str
    path: str
    function: str
    auth: bool = True  # behind the REQUEST authorizer and a usage plan; False: public (docs, health probes)
    body: type[BaseModel] | None = None  # checked shallowly by API Gateway; the function validates everything
    max_items: int | None = None  # the gateway's array bound for ``body`` when it is not MAAS_MAX_INPUTS
    any_task: bool = False  # answered by every task function's resolver: infra sends it to the first one deployed


HEAVY_FUNCTION = "heavy_proxy"


@dataclass(frozen=True)
class FunctionEnv:
    """What a routed function's environment needs beyond its tables, the same in the stack and in `maas serve`."""

    all_versions: bool = False  # MAAS_MODEL_SOURCE lists every served version of its model (`name@version`)
    forwards_heavy: bool = False  # MAAS_HEAVY_MODELS: requests naming a SageMaker-served model go to its endpoint
    own_max_inputs: bool = False  # no MAAS_MAX_INPUTS from the stack: its settings' own, lower default applies


# Per task function; the others (jobs, usage, the heavy proxy) take only tables and their own variables.
FUNCTION_ENV = {
    "embeddings": FunctionEnv(all_versions=True, forwards_heavy=True),
    # The catalog's embedding package also answers rerank and v2 (maas/data/catalog.toml, tasks_also).
    "rerank": FunctionEnv(all_versions=True),
    "v2": FunctionEnv(all_versions=True),
    # Zero-shot on the embedding package beside the trained classifiers; texts limited by ClassifySettings.
    "classify": FunctionEnv(own_max_inputs=True),
    # Images, not texts: ImageClassifySettings has its own limit.
    "image_classify": FunctionEnv(own_max_inputs=True),
}
# function -> the API module whose `openapi_app()` documents its routes (the heavy proxy takes the same bodies as
# the /v1/embeddings and /v2 routes, documented there).
API_MODULES = {
    "embeddings": "maas.api.embeddings",
    "classify": "maas.api.classify",
    "image_classify": "maas.api.images",
    "rerank": "maas.api.rerank",
    "v2": "maas.api.v2",
    "jobs": "maas.api.jobs",
    "usage": "maas.api.usage",
}

ROUTES: tuple[Route, ...] = (
    Route("POST", "/v1/embeddings", "embeddings", body=EmbeddingsRequest),
    # Hugging Face's feature-extraction shape, for InferenceClient(base_url=".../v1/feature-extraction").
    Route("POST", "/v1/feature-extraction", "embeddings", body=FeatureExtractionRequest),
    Route("GET", "/v1/models", "embeddings", any_task=True),
    Route("GET", "/v1/models/{model_id}", "embeddings", any_task=True),
    Route("GET", "/docs", "embeddings", auth=False, any_task=True),
    Route("GET", "/openapi.json", "embeddings", auth=False, any_task=True),
    Route("POST", "/v1/classify", "classify", body=ClassifyRequest),
    # Raw image bodies (image/png, image/jpeg) too: the function alone validates them.
    Route("POST", "/v1/images/classify", "image_classify"),
    Route("POST", "/v1/rerank", "rerank", body=RerankRequest, max_items=DEFAULT_MAX_DOCUMENTS),
    # Cohere's v2 rerank (cohere.ClientV2, litellm's cohere/); not a KServe route (its errors are the API's shape).
    Route("POST", "/v2/rerank", "rerank", body=RerankV2Request, max_items=DEFAULT_MAX_DOCUMENTS),
    # Open Inference Protocol (KServe v2) on the embedding package; health is public, as KServe probes are.
    Route("GET", "/v2/health/live", "v2", auth=False),
    Route("GET", "/v2/health/ready", "v2", auth=False),
    Route("GET", "/v2", "v2"),
    Route("GET", "/v2/models/{model_name}", "v2"),
    Route("GET", "/v2/models/{model_name}/ready", "v2"),
    Route("GET", "/v2/models/{model_name}/versions/{model_version}", "v2"),
    Route("GET", "/v2/models/{model_name}/versions/{model_version}/ready", "v2"),
    Route("POST", "/v2/models/{model_name}/infer", "v2"),
    Route("POST", "/v2/models/{model_name}/versions/{model_version}/infer", "v2"),
    Route("POST", "/v1/jobs", "jobs"),
    Route("GET", "/v1/jobs", "jobs"),
    Route("GET", "/v1/jobs/{job_id}", "jobs"),
    Route("GET", "/v1/usage", "usage"),
)


# The public routes that take a model of each task (GET /v1/models lists them per model; `{name}` is its id).
TASK_ROUTES = {
    "embeddings": ("POST /v1/embeddings", "POST /v1/feature-extraction"),
    "classify": ("POST /v1/classify",),
    "image-classify": ("POST /v1/images/classify",),
    "rerank": ("POST /v1/rerank", "POST /v2/rerank"),
}
V2_INFER = "POST /v2/models/{name}/infer"


def model_routes(name: str, tasks: Iterable[str], v2: bool) -> list[str]:
    """The routes that take model ``name`` for ``tasks`` (its catalog task and tasks_also); ``v2``: KServe v2 infer
    serves it too (the embedding models: the v2 function's package, or a heavy model's proxy)."""
    found = [route for task in tasks for route in TASK_ROUTES.get(task, ())] + ([V2_INFER] if v2 else [])
    return [route.replace("{name}", name) for route in dict.fromkeys(found)]


def heavy_routes(model: str) -> tuple[Route, ...]:
    """A SageMaker-served model's /v2 routes, answered by its proxy (maas.api.heavy)."""
    base = f"/v2/models/{model}"
    return tuple(
        Route(method, base + suffix, HEAVY_FUNCTION)
        for method, suffix in (
            ("POST", "/infer"),
            ("POST", "/versions/{model_version}/infer"),
            ("GET", ""),
            ("GET", "/ready"),
            ("GET", "/versions/{model_version}"),
            ("GET", "/versions/{model_version}/ready"),
        )
    )


def api_routes(heavy_models: Iterable[str] = ()) -> tuple[Route, ...]:
    """Every route of an API that serves ``heavy_models`` on SageMaker: their static routes first, so a matcher
    that takes the first match resolves them before `{model_name}`, as API Gateway does."""
    return tuple(r for model in heavy_models for r in heavy_routes(model)) + ROUTES


# Cohere's v2 rerank shares the /v2 prefix but not the protocol: its errors keep the API's (OpenAI's) shape.
NOT_KSERVE = frozenset({"/v2/rerank"})


def is_kserve_path(path: str) -> bool:
    """Whether ``path`` is an Open Inference Protocol (KServe v2) route, whose errors are ``{"error": "<message>"}``:
    /v2 and everything under it but Cohere's /v2/rerank."""
    return (path == "/v2" or path.startswith("/v2/")) and path.rstrip("/") not in NOT_KSERVE


def pattern(path: str) -> re.Pattern:
    """A regular expression matching the concrete paths of a resource path; groups are its path parameters."""
    parts = []
    for segment in path.strip("/").split("/"):
        m = re.fullmatch(r"\{(\w+)\}", segment)
        parts.append(f"(?P<{m.group(1)}>[^/]+)" if m else re.escape(segment))
    return re.compile("^/" + "/".join(parts) + "$")


class RouteMatcher:
    """Which route a request takes, as API Gateway decides it: the first route whose path matches (``routes`` in
    api_routes' order), preferring one with the request's method."""

    def __init__(self, routes: Iterable[Route]):
        self.routes = [(route, pattern(route.path)) for route in routes]

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str] | None] | None:
        """(route, URL-decoded path parameters or None), or None when no route has this path. A route of the same
        path with another method is returned when none has ``method`` (its function answers 405 or 404)."""
        by_path = None
        for route, compiled in self.routes:
            m = compiled.match(path)
            if m is None:
                continue
            found = (route, {k: unquote(v) for k, v in m.groupdict().items()} or None)
            if route.method == method:
                return found
            by_path = by_path or found
        return by_path
