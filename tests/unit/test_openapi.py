"""The served OpenAPI document describes every public route, whichever function API Gateway sends it to."""

from __future__ import annotations

import json
import re

import pytest

from maas.api import openapi
from maas.api.resolver import DOCS_PATH, OPENAPI_PATH
from maas.api.routes import FUNCTION_ENV
from maas.settings.functions import ClassifySettings, EmbeddingsSettings, ImageClassifySettings, RerankSettings
from maas.settings.names import DEFAULT_MAX_BODY_BYTES
from maas.tools.local.apigw import make_event
from maas.tools.local.functions import LambdaContext
from maas.tools.local.server import ROUTES
from tests.openapi_checks import assert_documented, json_schema, operation

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


@pytest.mark.parametrize("route", [r for r in ROUTES if (r.method, r.path) not in DOC_ROUTES], ids=str)
def test_every_route_documents_each_status_it_can_answer_in_the_error_shape(route):
    # GIVEN a routed operation of the served document
    op = operation(openapi.document(), route.method, route.path)
    # WHEN its documented statuses are read
    documented = set(op["responses"])
    # THEN the gateway's are there behind the authorizer, the body refusals where there is a body, the quota and an
    # Idempotency-Key's 422 where it is billed, 404 where a path names a model or job
    expected = set()
    if route.auth:
        expected |= {"401", "403", "429"}
    if route.method == "POST":
        expected |= {"400", "413", "415"}
    if route.method == "POST" and route.function in FUNCTION_ENV:
        expected |= {"422", "429", "503"}
    if "{" in route.path:
        expected.add("404")
    assert expected <= documented, (route, sorted(expected - documented))
    # AND every error status has the one error body
    for status in documented - {"200", "201"}:
        assert json_schema(op["responses"][status]) == {"$ref": "#/components/schemas/ErrorResponse"}, status


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
    assert {p["name"] for p in operation["parameters"] if p["in"] == "query"} == {"top_k", "model"}


def _field_default(settings_class, name: str):
    return settings_class.model_fields[name].default


@pytest.mark.parametrize(
    "schema,prop,max_items",
    [
        ("EmbeddingsRequest", "input", _field_default(EmbeddingsSettings, "max_inputs")),
        ("FeatureExtractionRequest", "inputs", _field_default(EmbeddingsSettings, "max_inputs")),
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
