"""Inference API: one REST API, the Lambda authorizer, a route per catalog task, usage plans per plan tier.

Decisions (infra/README.md explains them):
- Keys arrive as `Authorization: Bearer <key>` or `x-api-key`. By default API Gateway caches the authorizer's
  verdict for maas.settings.names.AUTHORIZER_CACHE_TTL_S keyed on the Authorization header, and the authorizer
  decides from that header alone whenever it is sent (maas.tenancy.authorizer.credential): the cache key and the
  decision are the same credential. The gateway answers 401 without calling the authorizer when Authorization is
  missing, so x-api-key alone is refused there. `authorizer_cache: false` declares no identity source and runs the
  authorizer on every call (x-api-key alone works; +$0.37 per million calls).
- X-Ray samples at the stage by one sampling rule (reservoir + rate from the configuration); the functions follow
  the gateway's decision, so the rule prices every traced call.
- Usage plans take the API key from the authorizer (`usageIdentifierKey`), so one key header serves both.
- `/docs`, `/openapi.json` and `/v2/health/{live,ready}` are public: they hold no tenant data and are read
  before anyone has a key (or by probes). They have their own low method throttle.
"""

from __future__ import annotations

import json

from aws_cdk import Duration, Names, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_xray as xray
from constructs import Construct
from pydantic import BaseModel

from infra.access_log import ACCESS_LOG_FORMAT
from infra.config import Config, Plan
from infra.functions import RETENTION
from infra.nag import suppress
from maas.api.gateway import GATEWAY_RESPONSES
from maas.api.routes import Route
from maas.errors import error_body
from maas.settings import names as constants

JSON = "application/json"
_SLOT = "\u0000message"  # stands for the message in error_template; never a real message


# Responses API Gateway can produce beyond maas.api.gateway's (which `maas serve` plays locally too):
# response type -> (status, error type, code, message), the same shape.
EXTRA_GATEWAY_RESPONSES = {
    "INVALID_API_KEY": (403, "permission_error", "no_usage_plan", "This API key has no usage plan."),
    "BAD_REQUEST_BODY": (
        400,
        "invalid_request_error",
        "invalid_request",
        "The request body does not match this route's schema; see /openapi.json.",
    ),
    "BAD_REQUEST_PARAMETERS": (400, "invalid_request_error", "invalid_request", "A required parameter is missing."),
    "MISSING_AUTHENTICATION_TOKEN": (
        404,
        "not_found_error",
        "not_found",
        "No route for this method and path; see /openapi.json.",
    ),
    "AUTHORIZER_FAILURE": (500, "server_error", "authorizer_error", "Authorization failed; retry."),
    "AUTHORIZER_CONFIGURATION_ERROR": (500, "server_error", "authorizer_error", "Authorization failed; retry."),
    "INTEGRATION_FAILURE": (502, "server_error", "bad_gateway", "The model could not be reached; retry later."),
}
# The DEFAULT_* responses cover many statuses (403, 404, 415, 500, 503, ...): only the body is replaced.
KEEP_STATUS = frozenset({"DEFAULT_4XX", "DEFAULT_5XX"})


def gateway_responses() -> dict[str, tuple[int, str, str, str]]:
    return {**EXTRA_GATEWAY_RESPONSES, **GATEWAY_RESPONSES}


def error_template(kind: str, code: str, message: str) -> str:
    """The mapping template of a gateway response: the API's error shape, valid JSON whatever the message."""
    if message == "$context.error.message":
        text = "$context.error.messageString"  # API Gateway's own JSON-quoted form
    elif message.startswith("$context."):
        text = f'"{message}"'  # an authorizer context value we set ourselves (no quotes in it)
    else:
        text = json.dumps(message)
    # The body from maas.errors, its message slot filled with the template expression.
    return json.dumps(error_body(_SLOT, kind, code), separators=(",", ":")).replace(json.dumps(_SLOT), text)


def request_schema(model: type[BaseModel], max_items: int) -> apigw.JsonSchema:
    """A shallow draft-4 schema from the runtime's pydantic model: required fields, top-level types, array size.

    The handler still validates everything (and explains it); this only stops malformed calls before they are
    billed as Lambda invocations.
    """
    source = model.model_json_schema()
    types = {
        "string": apigw.JsonSchemaType.STRING,
        "array": apigw.JsonSchemaType.ARRAY,
        "integer": apigw.JsonSchemaType.INTEGER,
        "number": apigw.JsonSchemaType.NUMBER,
        "boolean": apigw.JsonSchemaType.BOOLEAN,
        "object": apigw.JsonSchemaType.OBJECT,
        "null": apigw.JsonSchemaType.NULL,
    }
    properties = {}
    for name, spec in source.get("properties", {}).items():
        options = spec.get("anyOf", [spec])
        kinds = sorted({o["type"] for o in options if "type" in o})
        if not kinds:
            continue
        prop: dict = {"type": [types[k] for k in kinds]} if len(kinds) > 1 else {"type": types[kinds[0]]}
        if "array" in kinds:
            prop["max_items"] = max_items
        if "enum" in spec:
            prop["enum"] = spec["enum"]
        properties[name] = apigw.JsonSchema(**prop)
    extra_forbidden = model.model_config.get("extra") == "forbid"
    return apigw.JsonSchema(
        schema=apigw.JsonSchemaVersion.DRAFT4,
        title=model.__name__,
        type=apigw.JsonSchemaType.OBJECT,
        required=source.get("required", []),
        properties=properties,
        additional_properties=not extra_forbidden,
    )


SAMPLING_RULE_PRIORITY = 9000  # before X-Ray's default rule (10000), after rules an account sets by hand


class InferenceApi(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: Config,
        plans: tuple[Plan, ...],
        authorizer: lambda_.IFunction,
        public_paths: tuple[str, ...] = ("/docs", "/openapi.json"),
    ) -> None:
        """`public_paths`: the GET routes that will be public, each given the low public method throttle."""
        super().__init__(scope, id)
        self.config = config
        self.mounted: list[tuple[Route, lambda_.IFunction]] = []  # the table's routes, each with its function
        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=RETENTION[config.log_retention_days],
            removal_policy=RemovalPolicy.DESTROY,
        )
        docs_throttle = apigw.MethodDeploymentOptions(
            throttling_rate_limit=config.public_docs_rate_limit,
            throttling_burst_limit=max(1, int(config.public_docs_rate_limit * 2)),
        )
        self.api = apigw.RestApi(
            self,
            "Api",
            description="maas: metered inference API",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            api_key_source_type=apigw.ApiKeySourceType.AUTHORIZER,
            # Raw image bodies and binary tensors reach the function base64-encoded (isBase64Encoded), not mangled
            # as text, and binary tensor answers reach the client as bytes (maas.settings.names.BINARY_MEDIA_TYPES).
            binary_media_types=list(constants.BINARY_MEDIA_TYPES),
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.DESTROY,
            deploy_options=apigw.StageOptions(
                stage_name=config.stage_name,
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.custom(ACCESS_LOG_FORMAT),
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,  # would log request bodies
                metrics_enabled=True,  # per-route metrics for the dashboard
                tracing_enabled=config.tracing,
                throttling_rate_limit=config.stage_rate_limit,
                throttling_burst_limit=config.stage_burst_limit,
                method_options={f"{path}/GET": docs_throttle for path in public_paths},
            ),
        )
        suppress(
            self.api,
            "IAM4",
            "API Gateway's account-level CloudWatch role uses the AWS-managed AmazonAPIGatewayPushToCloudWatchLogs "
            "policy, the documented way to let API Gateway write execution and access logs.",
        )
        suppress(
            self.api,
            "APIG3",
            "No WAF: every authorized route has usage-plan throttling per tenant and a stage-wide throttle; a web "
            "ACL adds a fixed monthly fee that the idle cost of this kit avoids. Attach one per deployment if needed.",
        )
        if config.authorizer_cache:
            identity_sources = [apigw.IdentitySource.header("Authorization")]
            ttl = Duration.seconds(constants.AUTHORIZER_CACHE_TTL_S)
        else:
            identity_sources, ttl = [], Duration.seconds(0)
        self.authorizer = apigw.RequestAuthorizer(
            self, "Authorizer", handler=authorizer, identity_sources=identity_sources, results_cache_ttl=ttl
        )
        if not identity_sources:
            self.authorizer.node.default_child.add_property_deletion_override("IdentitySource")
        if config.tracing:
            self.sampling_rule = self._sampling_rule(config)

        for response_type, (status, kind, code, message) in gateway_responses().items():
            headers = {"Content-Type": f"'{JSON}'"}
            if status == 429:
                headers["Retry-After"] = "'1'"
            self.api.add_gateway_response(
                f"Error-{response_type}",
                type=apigw.ResponseType.of(response_type),
                status_code=None if response_type in KEEP_STATUS else str(status),
                response_headers=headers,
                templates={JSON: error_template(kind, code, message)},
            )

        self.validator = self.api.add_request_validator(
            "Validator", validate_request_body=True, validate_request_parameters=True
        )
        self.usage_plans: dict[str, apigw.UsagePlan] = {}
        for plan in plans:
            self.usage_plans[plan.name] = self.api.add_usage_plan(
                f"Plan-{plan.name}",
                description=f"maas plan '{plan.name}': {plan.description}".strip(),
                throttle=apigw.ThrottleSettings(rate_limit=plan.rate_limit, burst_limit=int(plan.burst_limit)),
                api_stages=[apigw.UsagePlanPerApiStage(api=self.api, stage=self.api.deployment_stage)],
            )

    @property
    def routes(self) -> list[Route]:
        return [route for route, _ in self.mounted]

    def add_route(self, route: Route, target: lambda_.IFunction) -> apigw.Method:
        """Put a route of the table (maas.api.routes) in front of ``target``: authorized and metered by a usage plan
        unless public; its ``body`` model checked shallowly by the gateway (arrays at most ``max_items``, default
        the configured max_inputs)."""
        method, path, public, body = route.method, route.path, not route.auth, route.body
        resource = self.api.root.resource_for_path(path)
        parameters = {
            f"method.request.path.{segment[1:-1]}": True
            for segment in path.split("/")
            if segment.startswith("{") and segment.endswith("}")
        }
        models = None
        if body is not None:
            model = self.api.add_model(
                f"Model{body.__name__}",
                content_type=JSON,
                schema=request_schema(body, route.max_items or self.config.max_inputs),
            )
            models = {JSON: model}
        method_ = resource.add_method(
            method,
            apigw.LambdaIntegration(target, allow_test_invoke=False),
            authorization_type=apigw.AuthorizationType.NONE if public else apigw.AuthorizationType.CUSTOM,
            authorizer=None if public else self.authorizer,
            api_key_required=not public,
            request_validator=self.validator if (parameters or models) else None,
            request_parameters=parameters or None,
            request_models=models,
        )
        suppress(
            method_,
            "COG4",
            "Callers are tenants with API keys checked by the Lambda REQUEST authorizer, not Cognito users.",
        )
        if public:
            suppress(
                method_,
                "APIG4",
                "Public documentation or health-probe route (Swagger UI, OpenAPI document, KServe v2 health): no "
                "tenant data, needed before a key exists or by probes; a method throttle bounds its cost.",
            )
        self.mounted.append((route, target))
        return method_

    def _sampling_rule(self, config: Config) -> xray.CfnSamplingRule:
        """The X-Ray rule for this stage only: `tracing_reservoir_per_s` calls a second, then `tracing_rate` of
        the rest. API Gateway makes the decision and the functions follow it (X-Ray's default rule would record
        the first call each second and 5% of the rest: about 30% of calls at 10 M calls a month)."""
        return xray.CfnSamplingRule(
            self,
            "Sampling",
            sampling_rule=xray.CfnSamplingRule.SamplingRuleProperty(
                rule_name=Names.unique_resource_name(self, max_length=32, separator="-"),
                priority=SAMPLING_RULE_PRIORITY,
                reservoir_size=config.tracing_reservoir_per_s,
                fixed_rate=config.tracing_rate,
                resource_arn=self.api.deployment_stage.stage_arn,
                service_name="*",
                service_type="AWS::ApiGateway::Stage",
                host="*",
                http_method="*",
                url_path="*",
                version=1,
            ),
        )

    @property
    def stage_name(self) -> str:
        return self.config.stage_name
