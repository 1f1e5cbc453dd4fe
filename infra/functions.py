"""One Lambda function of the service: staged code, layers, its own role and log group, a `live` alias."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.assets import HANDLER, AssetBuilder, StagedAsset
from infra.budget import check_function
from infra.config import FunctionConfig
from infra.nag import suppress
from maas.settings import names as constants

ARCHITECTURES = {"x86_64": lambda_.Architecture.X86_64, "arm64": lambda_.Architecture.ARM_64}
APPLICATION_LOG_LEVELS = {
    "DEBUG": lambda_.ApplicationLogLevel.DEBUG,
    "INFO": lambda_.ApplicationLogLevel.INFO,
    "WARN": lambda_.ApplicationLogLevel.WARN,
    "ERROR": lambda_.ApplicationLogLevel.ERROR,
}
ALIAS = "live"
RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
}


def python_runtime(version: str) -> lambda_.Runtime:
    return getattr(lambda_.Runtime, "PYTHON_" + version.replace(".", "_"))


class Layer:
    """A layer version and the staged folder it was made from (for the size budget)."""

    def __init__(self, label: str, version: lambda_.ILayerVersion, staged: StagedAsset) -> None:
        self.label, self.version, self.staged = label, version, staged


class ServiceFunction(Construct):
    """A function whose code is `functions/<folder>/app.py` + the `maas` package, handler `app.lambda_handler`.

    It gets its own role (only what `grant_*` adds, plus writing to its own log group), JSON logs with the
    platform's START/END/REPORT lines dropped (system level WARN: they cost ingestion on every call), and an
    alias that API Gateway and event sources invoke, so that SnapStart and provisioned concurrency apply.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        folder: str,
        description: str,
        settings: FunctionConfig,
        python: str,
        assets: AssetBuilder,
        layers: list[Layer],
        environment: dict[str, str],
        log_retention_days: int,
        log_level: str,
        tracing: bool,
    ) -> None:
        super().__init__(scope, id)
        self.folder = folder
        self.settings = settings
        self.code = assets.function_code(folder)
        self.parts = check_function(folder, self.code.path, {layer.label: layer.staged.path for layer in layers})

        self.log_group = logs.LogGroup(
            self, "Logs", retention=RETENTION[log_retention_days], removal_policy=RemovalPolicy.DESTROY
        )
        self.role = iam.Role(
            self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description=description
        )
        self.log_group.grant_write(self.role)
        if tracing:
            suppress(
                self.role,
                "IAM5",
                "X-Ray's PutTraceSegments/PutTelemetryRecords have no resource-level permissions (Resource '*').",
                applies_to=["Resource::*"],
            )
        self.function = lambda_.Function(
            self,
            "Function",
            description=description,
            runtime=python_runtime(python),
            architecture=ARCHITECTURES[settings.architecture],
            handler=HANDLER,
            code=lambda_.Code.from_asset(str(self.code.path)),
            layers=[layer.version for layer in layers],
            memory_size=settings.memory_mb,
            timeout=Duration.seconds(settings.timeout_s),
            reserved_concurrent_executions=settings.reserved_concurrency,
            snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if settings.snap_start else None,
            role=self.role,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=APPLICATION_LOG_LEVELS[log_level],
            system_log_level_v2=lambda_.SystemLogLevel.WARN,
            tracing=lambda_.Tracing.ACTIVE if tracing else lambda_.Tracing.DISABLED,
            environment={
                "POWERTOOLS_SERVICE_NAME": constants.SERVICE_NAME,
                "POWERTOOLS_METRICS_NAMESPACE": constants.METRICS_NAMESPACE,
                **({} if tracing else {"POWERTOOLS_TRACE_DISABLED": "true"}),
                **environment,
            },
        )
        self.alias = lambda_.Alias(
            self,
            "Alias",
            alias_name=ALIAS,
            version=self.function.current_version,
            provisioned_concurrent_executions=settings.provisioned_concurrency or None,
        )

    @property
    def code_path(self) -> Path:
        return self.code.path
