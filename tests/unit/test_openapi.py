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
from maas.tools.local.functions import LambdaContext
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


@pytest.mark.parametrize("module", openapi.CONTRIBUTORS)
def test_each_function_serves_the_whole_document_and_swagger_ui(module):
    # Given any function's resolver (API Gateway may send /openapi.json and /docs to any of them)
    import importlib

    app = importlib.import_module(module).openapi_app()
    # When the document and the Swagger UI page are requested
    spec = app.resolve(make_event("GET", OPENAPI_PATH), LambdaContext())
    docs = app.resolve(make_event("GET", DOCS_PATH), LambdaContext())
    # Then both describe every contributor's routes, not only this function's
    doc = json.loads(spec["body"])
    assert spec["statusCode"] == 200 and {"/v1/embeddings", "/v1/rerank", "/v1/jobs", "/v1/usage"} <= set(doc["paths"])
    assert docs["statusCode"] == 200 and "swagger-ui" in docs["body"].lower() and "/v1/classify" in docs["body"]


def test_server_url_follows_the_stage_prefix_clients_use():
    on_stage = make_event("GET", OPENAPI_PATH, stage="prod")  # an execute-api URL: .../prod/openapi.json
    assert openapi.base_path(on_stage) == "/prod"
    # A custom domain, `sam local` and `maas serve`: the stage is not in the URL
    assert openapi.base_path(make_event("GET", OPENAPI_PATH, stage="prod", stage_in_path=False)) == ""
    assert json.loads(openapi.document_json(on_stage))["servers"] == [{"url": "/prod"}]


def test_merge_refuses_an_operation_twice_and_two_models_under_one_name():
    a = {"paths": {"/x": {"get": {"responses": {}}}}, "components": {"schemas": {"M": {"type": "object"}}}}
    with pytest.raises(openapi.OpenApiMergeError, match="GET /x"):
        openapi.merge([a, a])
    b = {"paths": {"/y": {"get": {"responses": {}}}}, "components": {"schemas": {"M": {"type": "string"}}}}
    with pytest.raises(openapi.OpenApiMergeError, match="schemas/M"):
        openapi.merge([a, b])


def test_stand_in_refuses_to_serve_a_request():
    with pytest.raises(RuntimeError, match="documentation-only"):
        openapi.DOCS_ONLY.embed  # noqa: B018


def test_the_image_route_documents_raw_image_bodies():
    from maas.api.openapi import document

    operation = document()["paths"]["/v1/images/classify"]["post"]
    content = operation["requestBody"]["content"]
    assert {"application/json", "image/png", "image/jpeg"} <= set(content)
    assert content["image/png"]["schema"] == {"type": "string", "format": "binary"}
    assert {p["name"] for p in operation["parameters"] if p["in"] == "query"} == {
        "top_k",
        "model",
        "explain",
        "explain_evaluations",
        "explain_grid",
    }


def test_explanations_are_documented_on_both_classify_routes():
    from maas.api.openapi import document

    doc = document()
    schemas = doc["components"]["schemas"]
    assert {"explain", "explain_evaluations"} <= set(schemas["ClassifyParameters"]["properties"])
    assert {"explain", "explain_evaluations", "explain_grid"} <= set(schemas["ImageClassifyParameters"]["properties"])
    words = schemas["TextExplanation"]["properties"]
    assert {"output", "value", "base_value", "method", "evaluations", "words"} <= set(words)
    assert set(schemas["WordValue"]["properties"]) == {"text", "start", "end", "value"}
    assert {"grid", "size", "cells"} <= set(schemas["ImageExplanation"]["properties"])
    assert "MAAS_MAX_EXPLAIN_EVALUATIONS" in schemas["ClassifyParameters"]["properties"]["explain"]["description"]
    assert "explanation" in schemas["ExplainedLabelScore"]["properties"]
    assert "explanation" in schemas["ExplainedImageLabelScore"]["properties"]


def test_every_request_body_states_its_size_limit():
    from maas.api.batches import MAX_FILE_BYTES

    for item in openapi.document()["paths"].values():
        for op in item.values():
            if "requestBody" in op:
                # a file upload (multipart) has the Files API's limit, every other body the function's
                multipart = "multipart/form-data" in op["requestBody"]["content"]
                limit = MAX_FILE_BYTES if multipart else DEFAULT_MAX_BODY_BYTES
                assert op["requestBody"]["x-max-body-bytes"] == limit
                assert f"At most {limit} bytes" in op["requestBody"]["description"]
