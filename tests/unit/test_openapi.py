"""The served OpenAPI document describes every public route, whichever function API Gateway sends it to."""

from __future__ import annotations

import json
import re

import pytest

from maas.api import openapi
from maas.api.resolver import DOCS_PATH, OPENAPI_PATH
from maas.api.routes import FUNCTION_ENV
from maas.settings.functions import ClassifySettings, EmbeddingsSettings, ImageClassifySettings, RerankSettings
from maas.settings.names import DEFAULT_MAX_BODY_BYTES, MAX_FLOAT_INPUTS
from maas.tools.local.apigw import make_event
from maas.tools.local.server import ROUTES
from tests.openapi_checks import assert_documented, operation

DOC_ROUTES = {("GET", DOCS_PATH), ("GET", OPENAPI_PATH)}  # the document itself


@pytest.mark.parametrize("route", [r for r in ROUTES if (r.method, r.path) not in DOC_ROUTES], ids=str)
def test_every_route_of_maas_serve_is_documented_with_request_and_response_schemas(route):
    assert_documented(openapi.document(), route.method, route.path, public=not route.auth)


def test_document_is_valid_openapi_and_every_reference_resolves():
    validator = pytest.importorskip("openapi_spec_validator")
    doc = json.loads(openapi.document_json(make_event("GET", OPENAPI_PATH)))
    validator.validate(doc)
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(doc)))
    assert refs == set(doc["components"]["schemas"])  # none dangling, none unused
    # Powertools' 422 (validation) is not this API's: a 422 is documented only where an Idempotency-Key can be reused
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if "422" in op["responses"]:
                assert method == "post" and path != "/v1/jobs", (method, path)
                assert "Idempotency-Key" in op["responses"]["422"]["description"]


@pytest.mark.parametrize("route", [r for r in ROUTES if r.method == "POST" and r.function in FUNCTION_ENV], ids=str)
def test_every_billed_route_documents_its_quota_idempotency_and_model_statuses(route):
    # GIVEN a billed route (the generic statuses are checked for every route by assert_documented above)
    op = operation(openapi.document(), route.method, route.path)
    # WHEN its documented statuses are read
    # THEN the quota's 429, a reused Idempotency-Key's 422 and an unavailable model's 503 are there
    assert {"422", "429", "503"} <= set(op["responses"]), route


def _field_default(settings_class, name: str):
    return settings_class.model_fields[name].default


@pytest.mark.parametrize(
    "schema,prop,max_items",
    [
        ("EmbeddingsRequest", "input", _field_default(EmbeddingsSettings, "max_inputs")),
        ("FeatureExtractionRequest", "inputs", MAX_FLOAT_INPUTS),  # float vectors only
        ("ClassifyRequest", "inputs", _field_default(ClassifySettings, "max_inputs")),
        ("ImageClassifyRequest", "inputs", _field_default(ImageClassifySettings, "max_inputs")),
        ("RerankRequest", "documents", _field_default(RerankSettings, "max_documents")),
        ("RerankV2Request", "documents", _field_default(RerankSettings, "max_documents")),
    ],
)
def test_the_enforced_item_limits_are_schema_constraints(schema, prop, max_items):
    # GIVEN a list parameter the function bounds (its settings' default)
    doc = openapi.document()
    # WHEN its schema is read
    branches = doc["components"]["schemas"][schema]["properties"][prop]
    arrays = [b for b in branches.get("anyOf", [branches]) if b.get("type") == "array"]
    # THEN the list is bounded as the function bounds it, never empty, and its texts are non-blank
    assert arrays and all((a["minItems"], a["maxItems"]) == (1, max_items) for a in arrays)
    strings = [b for b in branches.get("anyOf", [branches]) if b.get("type") == "string"]
    strings += [a["items"] for a in arrays if a["items"].get("type") == "string"]
    strings += [b for a in arrays for b in a["items"].get("anyOf", []) if b.get("type") == "string"]
    assert strings and all(s["minLength"] == 1 for s in strings)


def test_every_request_body_states_its_size_limit():
    for item in openapi.document()["paths"].values():
        for op in item.values():
            if "requestBody" in op:
                assert op["requestBody"]["x-max-body-bytes"] == DEFAULT_MAX_BODY_BYTES
                assert f"At most {DEFAULT_MAX_BODY_BYTES} bytes" in op["requestBody"]["description"]
