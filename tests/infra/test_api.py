"""Inference API: routes from the catalog, the authorizer, usage plans, error shape, validation, access logs."""

from __future__ import annotations

import json

import pytest

from infra.access_log import ACCESS_LOG_FIELDS
from infra.api import KEEP_STATUS, error_template, gateway_responses
from infra.config import load_config, load_plans
from infra.stacks import function_folder
from maas.api import openapi
from maas.api.gateway import GATEWAY_RESPONSES
from maas.api.routes import HEAVY_FUNCTION, ROUTES, api_routes
from maas.schemas.classify import ClassifyRequest
from maas.schemas.embeddings import EmbeddingsRequest
from maas.schemas.rerank import RerankRequest
from maas.settings import names as constants
from tests.conftest import load_event
from tests.infra.templates import _resource_path, only, resources, routes, text
from tests.openapi_checks import assert_documented


def expected_routes(config) -> tuple[set, set]:
    """(authorized, public) (method, path) pairs of the route table that ``config`` deploys."""
    functions = {"usage", "jobs", "batches", HEAVY_FUNCTION} | {function_folder(task) for task in config.lambda_tasks}
    if config.embedding_model is not None:
        functions |= {"rerank", "v2"}
    deployed = [r for r in api_routes(m.name for m in config.sagemaker_models) if r.any_task or r.function in functions]
    authorized = {(r.method, r.path) for r in deployed if r.auth}
    public = {(r.method, r.path) for r in deployed if not r.auth}
    return authorized, public


V2_ROUTES = [(r.method, r.path) for r in ROUTES if r.function == "v2"]
PUBLIC_ROUTES = [(r.method, r.path) for r in ROUTES if not r.auth]


# (method, path) -> the alias (logical id prefix) that serves it in the default configuration.
ROUTE_TARGETS = {
    ("POST", "/v1/embeddings"): "TaskembeddingsAlias",
    ("POST", "/v1/rerank"): "TaskrerankAlias",
    ("POST", "/v1/classify"): "TaskclassifyAlias",
    ("POST", "/v1/images/classify"): "TaskimageclassifyAlias",
    ("POST", "/v1/jobs"): "JobsAlias",
    ("GET", "/v1/jobs"): "JobsAlias",
    ("GET", "/v1/jobs/{job_id}"): "JobsAlias",
    **{route: "V2Alias" for route in V2_ROUTES},
    ("POST", "/v2/models/all-minilm-l6-v2-fp32/infer"): "Proxyallminilml6v2fp32Alias",
    ("GET", "/v2/models/all-minilm-l6-v2-fp32"): "Proxyallminilml6v2fp32Alias",
    ("GET", "/v2/models/all-minilm-l6-v2-fp32/ready"): "Proxyallminilml6v2fp32Alias",
    ("POST", "/v2/models/all-minilm-l6-v2-fp32/versions/{model_version}/infer"): "Proxyallminilml6v2fp32Alias",
}


def test_every_catalog_route_exists_and_is_authorized(built):
    """Given the default catalog, every task and heavy-model route is behind the authorizer and a usage plan."""
    template = built.service_template
    authorizer_id, _ = only(template, "AWS::ApiGateway::Authorizer")
    authorized, public = expected_routes(load_config())
    found = routes(template)
    assert set(found) == authorized | public
    assert ("POST", "/v1/embeddings") in authorized and ("POST", "/v2/models/all-minilm-l6-v2-fp32/infer") in found
    for route in [("POST", "/v1/rerank"), ("POST", "/v1/classify"), ("POST", "/v1/images/classify"), ("GET", "/v2")]:
        assert route in authorized, route
    for route in authorized:
        method = found[route]
        assert method["AuthorizationType"] == "CUSTOM", route
        assert method["AuthorizerId"] == {"Ref": authorizer_id}, route
        assert method["ApiKeyRequired"] is True, route


def test_docs_and_v2_health_are_public_and_throttled(built):
    template = built.service_template
    found = routes(template)
    public = PUBLIC_ROUTES
    assert {route for route, props in found.items() if props["AuthorizationType"] == "NONE"} == set(public)
    for route in public:
        assert found[route]["AuthorizationType"] == "NONE"
        assert found[route].get("ApiKeyRequired", False) is False
    _, stage = only(template, "AWS::ApiGateway::Stage")
    settings = {s["ResourcePath"]: s for s in stage["Properties"]["MethodSettings"]}
    for _, path in public:
        escaped = "/~1" + path.lstrip("/").replace("/", "~1")
        assert settings[escaped]["ThrottlingRateLimit"] == load_config().public_docs_rate_limit


def test_routes_reach_the_right_function_alias(built):
    found = routes(built.service_template)
    for route, alias in ROUTE_TARGETS.items():
        uri = text(found[route]["Integration"]["Uri"])
        assert alias in uri, (route, uri)
        others = {a for a in ROUTE_TARGETS.values() if a != alias}
        assert not any(other in uri for other in others), (route, uri)
    for props in found.values():
        assert props["Integration"]["Type"] == "AWS_PROXY"


def test_heavy_model_static_segment_sits_beside_the_v2_model_name_parameter(built):
    """/v2/models has two children: the heavy model's static segment (its proxy) and {model_name} (the v2
    function); API Gateway matches the static one first, so both infer routes resolve to their own function."""
    template = built.service_template
    children = {
        r["Properties"]["PathPart"]
        for r in resources(template, "AWS::ApiGateway::Resource").values()
        if _resource_path(template, r["Properties"]["ParentId"]) == "/v2/models"
    }
    assert children == {"all-minilm-l6-v2-fp32", "{model_name}"}
    found = routes(template)
    heavy = text(found[("POST", "/v2/models/all-minilm-l6-v2-fp32/infer")]["Integration"]["Uri"])
    generic = text(found[("POST", "/v2/models/{model_name}/infer")]["Integration"]["Uri"])
    assert "Proxyallminilml6v2fp32Alias" in heavy and "V2Alias" in generic
    assert found[("POST", "/v2/models/{model_name}/infer")]["RequestParameters"] == {
        "method.request.path.model_name": True
    }
    assert "RequestParameters" not in found[("POST", "/v2/models/all-minilm-l6-v2-fp32/infer")]


def test_authorizer_verdicts_are_cached_on_the_authorization_header_by_default(built):
    """The cache key (Authorization) is the one header the authorizer decides from (maas.tenancy.authorizer)."""
    _, authorizer = only(built.service_template, "AWS::ApiGateway::Authorizer")
    props = authorizer["Properties"]
    assert props["Type"] == "REQUEST"
    assert props["AuthorizerResultTtlInSeconds"] == constants.AUTHORIZER_CACHE_TTL_S
    assert props["IdentitySource"] == "method.request.header.Authorization"
    assert "AuthorizerAlias" in text(props["AuthorizerUri"])


def test_without_the_cache_the_authorizer_runs_on_every_call_so_x_api_key_alone_works(variant):
    _, authorizer = only(variant.service_template, "AWS::ApiGateway::Authorizer")
    assert authorizer["Properties"]["AuthorizerResultTtlInSeconds"] == 0
    assert "IdentitySource" not in authorizer["Properties"]


def test_usage_plans_match_plans_toml_and_take_the_key_from_the_authorizer(built):
    template = built.service_template
    _, api = only(template, "AWS::ApiGateway::RestApi")
    assert api["Properties"]["ApiKeySourceType"] == "AUTHORIZER"
    plans = {
        p["Properties"]["Description"]: p["Properties"]
        for p in resources(template, "AWS::ApiGateway::UsagePlan").values()
    }
    expected = load_plans()
    assert len(plans) == len(expected)
    for plan in expected:
        props = next(v for k, v in plans.items() if f"'{plan.name}'" in k)
        assert props["Throttle"] == {"RateLimit": plan.rate_limit, "BurstLimit": plan.burst_limit}
        assert len(props["ApiStages"]) == 1


def test_usage_plans_follow_the_configured_subset(variant):
    descriptions = [
        p["Properties"]["Description"]
        for p in resources(variant.service_template, "AWS::ApiGateway::UsagePlan").values()
    ]
    assert sorted(d.split("'")[1] for d in descriptions) == ["free", "pro"]


@pytest.mark.parametrize("response_type", sorted(gateway_responses()))
def test_gateway_responses_use_the_one_error_shape(built, response_type):
    """Every gateway response renders {"error": {message, type, code}} with the runtime's status and type."""
    by_type = {
        r["Properties"]["ResponseType"]: r["Properties"]
        for r in resources(built.service_template, "AWS::ApiGateway::GatewayResponse").values()
    }
    status, kind, code, _ = gateway_responses()[response_type]
    props = by_type[response_type]
    if response_type in KEEP_STATUS:
        assert "StatusCode" not in props
    else:
        assert props["StatusCode"] == str(status)
    body = props["ResponseTemplates"]["application/json"]
    context = {"type": "permission_error", "code": "tenant_suspended", "reason": "x"}
    rendered = json.loads(render_gateway_template(body, context))["error"]
    assert rendered["type"] == context.get(kind.removeprefix("$context.authorizer."), kind)
    assert rendered["code"] == context.get(code.removeprefix("$context.authorizer."), code)
    assert props["ResponseParameters"]["gatewayresponse.header.Content-Type"] == "'application/json'"


def render_gateway_template(template: str, authorizer: dict[str, str]) -> str:
    """What API Gateway sends for a gateway response template: its $context variables filled (the authorizer's
    context values, and the quoted error message)."""
    for key, value in authorizer.items():
        template = template.replace(f"$context.authorizer.{key}", value)
    return template.replace("$context.error.messageString", '"Unauthorized"')


@pytest.mark.parametrize("refusal", ["revoked", "suspended"])
def test_the_gateway_keeps_the_authorizers_code_and_answers_as_maas_serve(built, refusal):
    # GIVEN the authorizer's Deny for a revoked key or a suspended tenant (maas.tenancy.authorizer)
    from maas.errors import Forbidden, Unauthorized
    from maas.tenancy.authorizer import refusal_context

    err = {
        "revoked": Unauthorized("This API key has been revoked.", code="revoked_api_key"),
        "suspended": Forbidden("This account is suspended; contact support.", code="tenant_suspended"),
    }[refusal]
    context = refusal_context(err)
    # WHEN the deployed ACCESS_DENIED response renders it, and `maas serve`'s gateway answers it
    by_type = {
        r["Properties"]["ResponseType"]: r["Properties"]
        for r in resources(built.service_template, "AWS::ApiGateway::GatewayResponse").values()
    }
    deployed = by_type["ACCESS_DENIED"]
    from maas.api.gateway import gateway_error

    status, local = gateway_error("ACCESS_DENIED", context)
    # THEN both are the same 403 with the authorizer's own type, code and message
    assert deployed["StatusCode"] == str(status) == "403"
    assert json.loads(render_gateway_template(deployed["ResponseTemplates"]["application/json"], context)) == local
    assert local == err.body()


def test_runtime_gateway_table_wins_and_required_types_are_mapped():
    merged = gateway_responses()
    for response_type, mapping in GATEWAY_RESPONSES.items():
        assert merged[response_type] == mapping
    for required in ("UNAUTHORIZED", "ACCESS_DENIED", "THROTTLED", "QUOTA_EXCEEDED", "REQUEST_TOO_LARGE"):
        assert required in merged
    assert {merged[t][0] for t in ("THROTTLED", "QUOTA_EXCEEDED")} == {429}
    assert merged["INTEGRATION_TIMEOUT"][:2] == (504, "server_error")


def test_error_template_is_valid_json_for_any_static_message():
    template = error_template("invalid_request_error", "x", 'say "hi" \\ there')
    assert json.loads(template)["error"]["message"] == 'say "hi" \\ there'


def test_request_body_is_validated_against_the_runtime_model(built):
    template = built.service_template
    method = routes(template)[("POST", "/v1/embeddings")]
    assert "RequestValidatorId" in method
    model_ref = method["RequestModels"]["application/json"]["Ref"]
    schema = template["Resources"][model_ref]["Properties"]["Schema"]
    assert schema["required"] == EmbeddingsRequest.model_json_schema()["required"]
    assert schema["additionalProperties"] is False
    assert sorted(schema["properties"]["input"]["type"]) == ["array", "string"]
    assert schema["properties"]["input"]["maxItems"] == load_config().max_inputs
    _, validator = only(template, "AWS::ApiGateway::RequestValidator")
    assert validator["Properties"]["ValidateRequestBody"] is True
    assert validator["Properties"]["ValidateRequestParameters"] is True
    model_route = routes(template)[("GET", "/v1/models/{model_id}")]
    assert model_route["RequestParameters"] == {"method.request.path.model_id": True}


def body_schema(template: dict, method: str, path: str) -> dict:
    """The schema of the gateway model that validates METHOD PATH's JSON body (the validator is on)."""
    properties = routes(template)[(method, path)]
    assert "RequestValidatorId" in properties
    return template["Resources"][properties["RequestModels"]["application/json"]["Ref"]]["Properties"]["Schema"]


def test_classify_body_is_validated_against_classify_request(built):
    template = built.service_template
    schema = body_schema(template, "POST", "/v1/classify")
    assert schema["title"] == "ClassifyRequest"
    assert schema["required"] == ClassifyRequest.model_json_schema().get("required", [])
    assert set(schema["properties"]) <= set(ClassifyRequest.model_json_schema()["properties"])
    jobs = routes(template)[("GET", "/v1/jobs/{job_id}")]
    assert jobs["RequestParameters"] == {"method.request.path.job_id": True}


def test_rerank_body_is_validated_against_rerank_request(built):
    # Given the synthesized gateway model of POST /v1/rerank
    schema = body_schema(built.service_template, "POST", "/v1/rerank")
    # Then it is RerankRequest's: required fields, no unknown ones, documents bounded by the function's own limit
    assert schema["title"] == "RerankRequest"
    assert schema["required"] == RerankRequest.model_json_schema()["required"] == ["query", "documents"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["documents"] == {"type": "array", "maxItems": constants.DEFAULT_MAX_DOCUMENTS}
    # And the gateway lets the sample requests through and stops malformed ones before the function
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft4Validator(schema)
    for name in ("rerank-post.json", "rerank-post-objects.json"):
        assert validator.is_valid(json.loads(load_event(name)["body"])), name
    for bad in ({"documents": ["a"]}, {"query": "q", "documents": "a"}, {"query": "q", "documents": [], "x": 1}):
        assert not validator.is_valid(bad), bad


def test_every_route_of_the_api_is_in_the_served_openapi_document(built):
    """The document /openapi.json serves (maas.api.openapi) covers every method the gateway routes, with request
    and response schemas; a new function's routes need its API module in openapi.CONTRIBUTORS."""
    doc = openapi.document()
    documented = [r for r in routes(built.service_template) if r not in {("GET", "/docs"), ("GET", "/openapi.json")}]
    assert {("POST", "/v1/classify"), ("POST", "/v1/rerank"), ("GET", "/v1/usage"), ("GET", "/v2")} <= set(documented)
    # (a heavy model's static infer route, served by its SageMaker proxy, is documented by the KServe v2 route)
    assert any(path.startswith("/v2/models/") and "{" not in path for _, path in documented)
    for method, path in documented:
        public = routes(built.service_template)[(method, path)]["AuthorizationType"] == "NONE"
        assert_documented(doc, method, path, public)


def test_function_payload_limit_comes_from_config(built):
    functions = resources(built.service_template, "AWS::Lambda::Function")
    task = next(f for k, f in functions.items() if k.startswith("Taskembeddings"))
    variables = task["Properties"]["Environment"]["Variables"]
    assert variables[constants.ENV_MAX_BODY_BYTES] == str(load_config().max_body_bytes)
    assert variables[constants.ENV_MAX_INPUTS] == str(load_config().max_inputs)


def test_access_logs_are_json_without_keys_and_execution_logs_without_bodies(built):
    template = built.service_template
    _, stage = only(template, "AWS::ApiGateway::Stage")
    props = stage["Properties"]
    assert "AccessLogs" in text(props["AccessLogSetting"]["DestinationArn"])
    fields = json.loads(props["AccessLogSetting"]["Format"])
    assert fields == ACCESS_LOG_FIELDS
    assert not any("apiKey" in v for v in fields.values())
    everything = next(s for s in props["MethodSettings"] if s["ResourcePath"] == "/*")
    assert everything["LoggingLevel"] == "ERROR"
    assert everything["DataTraceEnabled"] is False
    assert everything["MetricsEnabled"] is True
    assert props["StageName"] == load_config().stage_name


def test_usage_route_goes_to_the_read_only_usage_function(built):
    """GET /v1/usage is served by functions/usage through its alias; the usage plan ids are an output."""
    template = built.service_template
    uri = text(routes(template)[("GET", "/v1/usage")]["Integration"]["Uri"])
    assert "UsageAlias" in uri and "Taskembeddings" not in uri
    assert "UsagePlanIds" in template["Outputs"]
