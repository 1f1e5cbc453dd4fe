"""The route table (maas.api.routes) is the API: the synthesized API Gateway, `maas serve`, `maas invoke` and the
OpenAPI document each have exactly its routes. A route added to one and not the others fails here."""

from __future__ import annotations

import json
import re

import pytest

from infra.config import load_config
from maas.api import openapi
from maas.api.routes import FUNCTION_ENV, HEAVY_FUNCTION, ROUTES, api_routes
from maas.settings.names import ENV_HEAVY_MODELS, ENV_MAX_INPUTS, ENV_MODEL_SOURCE
from maas.tools import paths
from maas.tools.local.endpoint import heavy_models
from maas.tools.local.invoke import routed_function
from maas.tools.local.server import LocalApi, function_env
from tests.infra.templates import resources, routes, text
from tests.openapi_checks import assert_documented

# function -> the alias (logical id prefix) of its Lambda in the synthesized template.
ALIASES = {
    "embeddings": "TaskembeddingsAlias",
    "classify": "TaskclassifyAlias",
    "image_classify": "TaskimageclassifyAlias",
    "rerank": "TaskrerankAlias",
    "v2": "V2Alias",
    "jobs": "JobsAlias",
    "batches": "FilesAlias",
    "usage": "UsageAlias",
    HEAVY_FUNCTION: "Proxy",
}
DOC_PATHS = {"/docs", "/openapi.json"}  # the document itself


def concrete(path: str) -> str:
    """A request path for a resource path: each `{name}` segment filled with a value."""
    return re.sub(r"\{\w+\}", "x-1", path)


def shape(path: str) -> str:
    """A path with its parameter names erased (the resolver and API Gateway may name them differently)."""
    return re.sub(r"\{\w+\}", "{}", path)


def test_synthesized_api_has_exactly_the_table_routes_each_on_its_function(built):
    # GIVEN the default configuration, which deploys every function of the table
    config = load_config()
    table = api_routes(m.name for m in config.sagemaker_models)
    # WHEN the service stack is synthesized
    found = routes(built.service_template)
    # THEN its methods are the table's, no more and no less
    assert set(found) == {(r.method, r.path) for r in table}
    # AND each reaches the table's function, behind the authorizer unless the table says public
    for route in table:
        props = found[(route.method, route.path)]
        assert ALIASES[route.function] in text(props["Integration"]["Uri"]), route
        assert (props["AuthorizationType"] == "CUSTOM") == route.auth, route


@pytest.mark.parametrize("route", api_routes(heavy_models()), ids=str)
def test_maas_serve_dispatches_every_table_route_to_its_function(route):
    # GIVEN maas serve's API on the table (no handler is loaded to route)
    api = LocalApi()
    # WHEN a request for the route arrives
    function, resource, _, auth = api.route(route.method, concrete(route.path))
    # THEN it reaches the table's function, as the table's resource, behind the authorizer as the table says
    assert (function, resource, auth) == (route.function, route.path, route.auth)
    assert route.function in function_env(paths.model_dir())


def test_maas_serve_loads_only_the_functions_of_the_table():
    # GIVEN maas serve's API on the table
    api = LocalApi()
    # THEN the functions it loads are the table's (and its default for unmatched paths)
    assert set(api.function_names()) == {r.function for r in api_routes(heavy_models())} | {api.default_function}


@pytest.mark.parametrize("route", [r for r in ROUTES if r.path not in DOC_PATHS], ids=str)
def test_openapi_documents_every_table_route(route):
    assert_documented(openapi.document(), route.method, route.path, public=not route.auth)


def test_openapi_documents_no_route_the_table_lacks():
    # GIVEN the table's routes, parameter names aside
    table = {(r.method, shape(r.path)) for r in ROUTES}
    # WHEN the document's operations are listed
    documented = {(m.upper(), shape(p)) for p, item in openapi.document()["paths"].items() for m in item}
    # THEN each is a route of the table
    assert documented - table == set()


@pytest.mark.parametrize("name", sorted(p.name for p in paths.EVENTS_DIR.glob("*.json")))
def test_maas_invoke_routes_each_sample_event_to_the_function_its_file_names(name):
    # GIVEN a sample event named after a function (`<function>-...json`)
    event = json.loads((paths.EVENTS_DIR / name).read_text())
    function = name.split("-", 1)[0]
    # WHEN maas invoke looks its route up in the table
    routed = routed_function(event)
    # THEN an API event of a function's file goes to that function; other events are not routed
    if "httpMethod" in event and "methodArn" not in event:
        assert routed is not None, name
        if function in ALIASES:
            assert routed == function, name
    else:
        assert routed is None, name


# task function -> how its Lambda's description starts in the stack (infra/stacks.py)
DESCRIPTIONS = {
    "embeddings": "maas: embeddings (",
    "rerank": "maas: rerank (",
    "classify": "maas: classify (",
    "image_classify": "maas: image-classify (",
    "v2": "maas: Open Inference Protocol /v2",
}


@pytest.mark.parametrize("function", sorted(FUNCTION_ENV))
def test_stack_and_maas_serve_give_each_function_the_environment_the_table_says(built, function):
    # GIVEN what the table says the function's environment needs
    needs = FUNCTION_ENV[function]
    # WHEN the stack and maas serve set its variables
    [deployed] = [
        props["Environment"]["Variables"]
        for props in (r["Properties"] for r in resources(built.service_template, "AWS::Lambda::Function").values())
        if str(props.get("Description", "")).startswith(DESCRIPTIONS[function])
    ]
    local = function_env(paths.model_dir())[function]
    # THEN both follow it: every served version, forwarding to heavy models, the function's own input limit
    if needs.all_versions:
        config = load_config()
        assert len(text(deployed[ENV_MODEL_SOURCE]).split(",")) == len(config.versions(config.embedding_model))
    assert (ENV_HEAVY_MODELS in deployed) == needs.forwards_heavy
    assert (ENV_HEAVY_MODELS in local) == (needs.forwards_heavy and bool(heavy_models()))
    assert (ENV_MAX_INPUTS in deployed) == (not needs.own_max_inputs)
