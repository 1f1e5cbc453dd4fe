"""The function URL front door: a Lambda function URL (auth NONE) per API-facing function, the key checked in it.

Beside the REST API (which keeps serving every route, the docs and the health probes): each function that an
authorized route reaches gets a URL on its `live` alias, and its handler becomes maas.tenancy.frontdoor's entry
point, which judges the credential (cached per container, keyed on exactly that credential), fills the authorizer
context and calls the function's own handler. A URL serves only its function's routes (one host per function).
What this door gives up is in infra/README.md ("Front doors").
"""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import CfnOutput
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.api import InferenceApi
from infra.assets import HANDLER
from infra.functions import ServiceFunction
from maas.tables import API_KEYS, TENANTS
from maas.tenancy import frontdoor

if frontdoor.WRAPPED != HANDLER:
    raise ImportError("maas.tenancy.frontdoor.WRAPPED must name the functions' handler, infra.assets.HANDLER")


class FunctionUrlFrontDoor(Construct):
    """Function URLs for the functions behind ``api``'s authorized routes; ``urls``: construct id -> URL."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        api: InferenceApi,
        functions: dict[str, ServiceFunction],
        tenants: dynamodb.ITable,
        api_keys: dynamodb.ITable,
        tracing: bool,
    ) -> None:
        super().__init__(scope, id)
        self.urls: dict[str, lambda_.FunctionUrl] = {}
        for name, fn in self._served(api, functions):
            function = fn.function.node.default_child
            function.add_property_override("Handler", frontdoor.ENTRY)
            if tracing:
                # Lambda's own sampling (1 call/s + 5%) cannot be set: trace only what an upstream (the REST stage's
                # sampling rule) decided to trace, never every URL call.
                function.add_property_override("TracingConfig.Mode", "PassThrough")
            fn.function.add_environment(TENANTS.env_var, tenants.table_name)
            fn.function.add_environment(API_KEYS.env_var, api_keys.table_name)
            tenants.grant_read_data(fn.role)
            api_keys.grant_read_data(fn.role)
            self.urls[name] = fn.alias.add_function_url(auth_type=lambda_.FunctionUrlAuthType.NONE)
            url = self.urls[name].url
            CfnOutput(self, f"Url{name.replace('-', '')}", value=url, description=f"{name} function URL")

    @staticmethod
    def _served(api: InferenceApi, functions: dict[str, ServiceFunction]) -> Iterable[tuple[str, ServiceFunction]]:
        targets = {id(target) for route, target in api.mounted if route.auth}
        return [(name, fn) for name, fn in functions.items() if id(fn.alias) in targets]
