"""One OpenAPI document for the whole public API, built from every function's own resolver.

Each task is a separate Lambda with its own Powertools resolver, and API Gateway sends `GET /openapi.json` and
`GET /docs` to one of them (the route table, maas.api.routes). So that whichever function answers
describes every route, each API module contributes its resolver as the function registers it (the same
route decorators and pydantic models, built around DOCS_ONLY stand-ins that are never called), and this
module merges their schemas. Nothing is generated at build time, so nothing can go stale; the document is
built on the first request for it (the contributors are imported then, not at the function's init) and
kept for the container's life.

The heavy-model proxy (maas.api.heavy) adds no schema of its own: its routes are /v1/embeddings and the /v2 model
routes, with the same bodies. To document new routes: add them to maas.api.routes, give the function's API module
an ``openapi_app() -> APIGatewayRestResolver`` and name it in maas.api.routes.API_MODULES. tests/unit/test_openapi.py
fails for any route of `maas serve` without an operation, request body schema and response schema here, and
tests/infra/test_api.py for any route of the synthesized API.
"""

from __future__ import annotations

import copy
import importlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from types import SimpleNamespace

from maas import __version__
from maas.api.routes import API_MODULES, FUNCTION_ENV, ROUTES, is_kserve_path, pattern
from maas.settings import names as c
from maas.settings.names import DEFAULT_MAX_BODY_BYTES

TITLE = "maas API"
DESCRIPTION = (
    "Compressed ONNX models as metered, pay-per-call APIs: OpenAI-compatible embeddings and models, Hugging Face "
    "text classification, Cohere/Jina rerank, the Open Inference Protocol (KServe v2), batch jobs and the caller's "
    'usage. Send the key as `Authorization: Bearer <key>` or `x-api-key`. Every error has the shape {"error": '
    '{"message", "type", "code"}}.'
)
# Modules with an `openapi_app()`, in the order the route table (maas.api.routes) first names their functions.
CONTRIBUTORS = tuple(dict.fromkeys(API_MODULES[route.function] for route in ROUTES))
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "`Authorization: Bearer <key>` (OpenAI clients)"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
}
JSON = "application/json"
# Routes anyone may call (no key): the documentation and KServe's health probes (infra's public routes).
PUBLIC_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})


ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
KSERVE_ERROR_REF = {"$ref": "#/components/schemas/KServeErrorResponse"}  # maas.api.v2's error body
# Statuses an operation can answer beside those its module documents, by what it is. Behind the authorizer: the
# gateway's answers (maas.api.gateway; the authorizer's codes kept). With a body: maas.bodies' refusals. Billed (the
# task functions' POST routes): an Idempotency-Key reused with another request, and the quota. A path parameter: an
# unknown model or job.
AUTHENTICATED = {
    401: "Missing or unknown API key (code invalid_api_key)",
    403: "The key is revoked (revoked_api_key) or its tenant suspended (tenant_suspended)",
    429: "Throttled by the plan's rate limit (rate_limited), or the monthly quota would be exceeded (quota_exceeded)",
}
WITH_BODY = {
    400: "Invalid request: a body that is empty, not UTF-8, not JSON, ambiguous JSON (a key twice, NaN, numbers out "
    "of range) or fields that do not fit the schema",
    413: f"Body over the function's limit (MAAS_MAX_BODY_BYTES, default {DEFAULT_MAX_BODY_BYTES} bytes; API "
    "Gateway's own is 10 MB), or a request over its token budget (token_budget_exceeded, where the operation says)",
    415: "Content-Type not accepted, or a compressed body (Content-Encoding other than identity)",
}
BILLED = {
    422: "The Idempotency-Key was already used with a different request (route, model or body)",
    429: AUTHENTICATED[429],
}
WITH_QUERY = {400: "Invalid query parameter: not of its type or out of its range"}
WITH_PATH_PARAMETER = {404: "Nothing of that id: an unknown model, version, job, file, upload or batch"}
METERED = [pattern(r.path) for r in ROUTES if r.method == "POST" and r.function in FUNCTION_ENV]


def statuses_of(method: str, path: str, operation: dict) -> dict[int, str]:
    """The statuses ``operation`` (METHOD PATH) can answer that its kind implies (see AUTHENTICATED...)."""
    found: dict[int, str] = {}
    if operation.get("security") != []:
        found.update(AUTHENTICATED)
    if any(p.get("in") == "query" for p in operation.get("parameters", [])):
        found.update(WITH_QUERY)
    if "requestBody" in operation:
        found.update(WITH_BODY)
    if method == "post" and any(p.match(re.sub(r"\{\w+\}", "x", path)) for p in METERED):
        found.update(BILLED)
    if "{" in path:
        found.update(WITH_PATH_PARAMETER)
    return found


def error_schema(path: str, status: int) -> dict:
    """The body of an error ``status`` on ``path``: the one error body, or on a KServe v2 route the protocol's body
    its function answers or the one error body API Gateway answers (throttling, size: a gateway response is per API,
    not per route); a 401 or 403 comes only from the gateway."""
    if not is_kserve_path(path) or status in (401, 403):
        return ERROR_REF
    return {"anyOf": [KSERVE_ERROR_REF, ERROR_REF]}


def document_statuses(paths: dict) -> None:
    """Add to every operation the statuses it can answer (statuses_of) that its module did not document."""
    for path, item in paths.items():
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            for status, text in statuses_of(method, path, operation).items():
                content = {JSON: {"schema": error_schema(path, status)}}
                responses.setdefault(str(status), {"description": text, "content": content})


# The limits the functions enforce (maas.inference.validation and the services), as schema constraints, at their
# defaults (a deployment may change them through the setting named): schema -> property -> Limit. Every text is
# non-blank; a property that takes a string or a list of strings gets both constrained.
NON_BLANK = {"minLength": 1, "pattern": "\\S"}
LABEL = {**NON_BLANK, "maxLength": c.MAX_LABEL_CHARS}


@dataclass(frozen=True)
class Limit:
    text: dict  # constraints of each string
    max_items: int | None = None  # of a list (which is never empty)
    setting: str | None = None  # the variable that changes max_items
    item_text: dict | None = None  # constraints of a list's strings, when not ``text``


LIMITS = {
    "EmbeddingsRequest": {"input": Limit(NON_BLANK, c.DEFAULT_MAX_INPUTS, c.ENV_MAX_INPUTS)},
    "FeatureExtractionRequest": {"inputs": Limit(NON_BLANK, c.MAX_FLOAT_INPUTS)},  # float vectors only
    "ClassifyRequest": {"inputs": Limit(NON_BLANK, c.DEFAULT_CLASSIFY_MAX_INPUTS, c.ENV_MAX_INPUTS)},
    # a list of labels, or one comma-separated string of them
    "ClassifyParameters": {
        "candidate_labels": Limit(
            NON_BLANK, c.MAX_CANDIDATE_LABELS, None, {**NON_BLANK, "maxLength": c.MAX_LABEL_CHARS}
        )
    },
    "ImageClassifyRequest": {"inputs": Limit({"minLength": 1}, c.DEFAULT_IMAGE_MAX_INPUTS, c.ENV_MAX_INPUTS)},
    "RerankRequest": {
        "query": Limit(NON_BLANK),
        "documents": Limit(NON_BLANK, c.DEFAULT_MAX_DOCUMENTS, c.ENV_MAX_DOCUMENTS),
    },
    "RerankV2Request": {
        "query": Limit(NON_BLANK),
        "documents": Limit(NON_BLANK, c.DEFAULT_MAX_DOCUMENTS, c.ENV_MAX_DOCUMENTS),
    },
    "RerankDocument": {"text": Limit(NON_BLANK)},
}


def _constrain(schema: dict, limit: Limit) -> None:
    """Put ``limit`` on every string and array branch of ``schema`` (and on the array's strings)."""
    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") == "string":
            branch.update(limit.text)
        elif branch.get("type") == "array":
            branch["minItems"] = 1
            if limit.max_items is not None:
                branch["maxItems"] = limit.max_items
            _constrain(branch.get("items", {}), Limit(limit.item_text or limit.text))
    if limit.max_items is not None and limit.setting:
        text = f"At most {limit.max_items} items (the default of {limit.setting})."
        schema["description"] = f"{schema.get('description', '').rstrip()} {text}".strip()


def document_limits(schemas: dict) -> None:
    """The enforced limits (LIMITS) as constraints of the component schemas."""
    for name, properties in LIMITS.items():
        for prop, limit in properties.items():
            _constrain(schemas[name]["properties"][prop], limit)


def document_body_limit(paths: dict, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
    """Every request body's size limit in its description (JSON Schema cannot bound a body's bytes)."""
    for item in paths.values():
        for operation in item.values():
            body = operation.get("requestBody")
            if body is not None and "x-max-body-bytes" not in body:  # a patch may have stated its own
                limit = f"At most {max_body_bytes} bytes (MAAS_MAX_BODY_BYTES), UTF-8 JSON, not compressed."
                body["description"] = f"{body.get('description', '').rstrip()} {limit}".strip()
                body["x-max-body-bytes"] = max_body_bytes


class _DocsOnly:
    """Stands in for a service, billing or logger in a resolver built only for its schema: the settings the
    resolver reads while registering routes, and an error if a route ever ran against it."""

    settings = SimpleNamespace(max_body_bytes=DEFAULT_MAX_BODY_BYTES)

    def __getattr__(self, name: str):
        raise RuntimeError(f"documentation-only stand-in: '{name}' is not available")


DOCS_ONLY = _DocsOnly()


class OpenApiMergeError(Exception):
    """Two contributors define the same operation, or the same component name with different schemas."""


def merge(schemas: list[dict], patches: Iterable[Callable[[dict], None]] = ()) -> dict:
    """The paths and components of ``schemas`` (OpenAPI dicts) in one document; a clash is an error, not a
    silent overwrite (an operation twice, or one component name for two different models). ``patches`` then add
    what a resolver cannot declare (raw or multipart bodies), before every operation gets its statuses and limits."""
    paths: dict[str, dict] = {}
    components: dict[str, dict] = {}
    for schema in schemas:
        for path, item in schema.get("paths", {}).items():
            target = paths.setdefault(path, {})
            for method, operation in item.items():
                if method in target:
                    raise OpenApiMergeError(f"{method.upper()} {path} is documented by two modules")
                target[method] = operation
        for kind, entries in schema.get("components", {}).items():
            target = components.setdefault(kind, {})
            for name, entry in entries.items():
                if name in target and target[name] != entry:
                    raise OpenApiMergeError(f"component {kind}/{name} has two different definitions")
                target[name] = entry
    for path, item in paths.items():
        for operation in item.values():
            # Powertools documents a 422 for failed validation; this API answers those with a 400 in its
            # error shape (maas.api.resolver), which every route with a body documents.
            operation.get("responses", {}).pop("422", None)
            if path in PUBLIC_PATHS:
                operation["security"] = []  # no key needed
    for patch in patches:
        patch({"paths": paths})
    document_statuses(paths)
    document_body_limit(paths)
    schemas = components.get("schemas", {})
    document_limits(schemas)
    used = _referenced(paths, schemas)
    components["schemas"] = {name: schema for name, schema in schemas.items() if name in used}
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": __version__, "description": DESCRIPTION},
        "paths": paths,
        "components": {**components, "securitySchemes": SECURITY_SCHEMES},
        "security": [{"bearer": []}, {"apiKey": []}],
    }


def _referenced(paths: dict, schemas: dict) -> set[str]:
    """Names of the component schemas that ``paths`` refer to, directly or through other schemas."""
    prefix = "#/components/schemas/"
    found: set[str] = set()
    todo = [paths]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(prefix) and ref[len(prefix) :] not in found:
                found.add(ref[len(prefix) :])
                todo.append(schemas.get(ref[len(prefix) :], {}))
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    return found


@cache
def document() -> dict:
    """The merged document of every contributor (built once per process)."""
    schemas, patches = [], []
    for name in CONTRIBUTORS:
        module = importlib.import_module(name)
        schemas.append(json.loads(module.openapi_app().get_openapi_json_schema(title=TITLE, version=__version__)))
        if hasattr(module, "openapi_patch"):  # what a resolver cannot declare (e.g. raw binary request bodies)
            patches.append(module.openapi_patch)
    return merge(schemas, patches)


def base_path(event: dict) -> str:
    """The stage prefix clients see in URLs: `/prod` on an execute-api URL, nothing behind a custom domain or
    `maas serve` (the request's path then does not start with the stage), as Powertools' Swagger UI does."""
    context = event.get("requestContext") or {}
    stage, path = context.get("stage"), context.get("path") or ""
    return f"/{stage}" if stage and stage != "$default" and path.startswith(f"/{stage}") else ""


def document_json(event: dict) -> str:
    """The document for this request, with the server URL it was reached on."""
    doc = copy.copy(document())
    doc["servers"] = [{"url": base_path(event) or "/"}]
    return json.dumps(doc, separators=(",", ":"))


def swagger_html(event: dict) -> str:
    """The Swagger UI page with the document inline (Powertools' page and bundled assets: no CDN)."""
    from pathlib import Path

    from aws_lambda_powertools.event_handler.openapi import swagger_ui

    assets = Path(swagger_ui.__file__).parent
    js = (assets / "swagger-ui-bundle.min.js").read_text(encoding="utf-8")
    css = (assets / "swagger-ui.min.css").read_text(encoding="utf-8")
    # "</" would end the inline <script>; "<\/" is the same JSON string.
    return swagger_ui.generate_swagger_html(document_json(event).replace("</", "<\\/"), js, css, "", None)
