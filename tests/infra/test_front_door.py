"""Front doors in the templates: X-Ray sampled by one rule on the stage; function URLs with the in-function check."""

from __future__ import annotations

from infra.config import load_config
from infra.functions import ALIAS
from maas.tables import API_KEYS
from maas.tenancy import frontdoor
from tests.infra.templates import only, policy_of_role, resources, text

URL_FUNCTIONS = ("Taskembeddings", "Taskrerank", "V2", "Usage", "Jobs", "Files", "Proxyallminilml6v2fp32")


def test_xray_records_calls_by_a_low_fixed_rate_rule_scoped_to_the_stage(built):
    config = load_config()
    _, stage = only(built.service_template, "AWS::ApiGateway::Stage")
    assert stage["Properties"]["TracingEnabled"] is True
    _, rule = only(built.service_template, "AWS::XRay::SamplingRule")
    props = rule["Properties"]["SamplingRule"]
    assert props["FixedRate"] == config.tracing_rate == 0.001
    assert props["ReservoirSize"] == config.tracing_reservoir_per_s == 0
    assert props["Priority"] < 10000  # evaluated before X-Ray's default rule (1/s + 5%)
    assert props["ServiceType"] == "AWS::ApiGateway::Stage"
    assert "restapis" in text(props["ResourceARN"]) and "Stage" in text(props["ResourceARN"])
    assert len(props["RuleName"]) <= 32


def test_the_rest_front_door_has_no_function_urls(built):
    assert resources(built.service_template, "AWS::Lambda::Url") == {}


def test_no_sampling_rule_without_tracing(variant):
    assert resources(variant.service_template, "AWS::XRay::SamplingRule") == {}


def test_function_urls_reach_the_live_alias_of_every_api_facing_function_and_no_other(variant):
    template = variant.service_template
    urls = resources(template, "AWS::Lambda::Url")
    targets = sorted(text(u["Properties"]["TargetFunctionArn"]) for u in urls.values())
    assert all(u["Properties"]["AuthType"] == "NONE" for u in urls.values())
    assert all(u["Properties"]["Qualifier"] == ALIAS for u in urls.values())
    for name in URL_FUNCTIONS:
        assert sum(f"{name}Function" in t for t in targets) == 1, name
    assert not any(word in t for t in targets for word in ("Authorizer", "Batch"))


def test_url_functions_check_the_key_themselves_and_may_read_only_the_key_tables(variant):
    template = variant.service_template
    functions = resources(template, "AWS::Lambda::Function")
    for name in URL_FUNCTIONS:
        props = next(v["Properties"] for k, v in functions.items() if k.startswith(f"{name}Function"))
        assert props["Handler"] == frontdoor.ENTRY
        assert API_KEYS.env_var in props["Environment"]["Variables"]
        keys = [s for s in policy_of_role(template, f"{name}Role") if "ApiKeys" in text(s["Resource"])]
        assert keys and all(not any("Put" in a or "Delete" in a or "Update" in a for a in s["Action"]) for s in keys)
    authorizer = next(v["Properties"] for k, v in functions.items() if k.startswith("AuthorizerFunction"))
    assert authorizer["Handler"] == "app.lambda_handler"
