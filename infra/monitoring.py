"""Operations: one dashboard and the alarms that page, all to one SNS topic."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.api import InferenceApi
from infra.config import AlarmConfig
from infra.functions import ServiceFunction
from infra.gpu import GpuEndpoint
from infra.nag import suppress
from maas.settings import names as constants

NAMESPACE = constants.METRICS_NAMESPACE  # where the access-log metric filter publishes
QUOTA_REJECTIONS = "QuotaRejections"  # the metric maas.metering.charge emits
PERIOD = Duration.minutes(1)
ALARM_PERIOD = Duration.minutes(5)

# Usage is promised visible within 60 s; a stream consumer this far behind breaks that promise.
STREAM_LAG_ALARM_MS = 60_000


@dataclass(frozen=True)
class Alarmed:
    """What the monitoring needs to know about one function."""

    name: str
    function: ServiceFunction
    alarm_throttles: bool = True
    stream_consumer: bool = False  # alarm when its stream records wait (IteratorAge): usage would be late


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        api: InferenceApi,
        functions: list[Alarmed],
        gpu: dict[str, GpuEndpoint],
        dead_letters: sqs.IQueue,
        settings: AlarmConfig,
    ) -> None:
        super().__init__(scope, id)
        self.topic = sns.Topic(self, "Alarms", enforce_ssl=True, display_name="maas alarms")
        suppress(
            self.topic,
            "SNS2",
            "Alarm notifications carry metric names only. CloudWatch cannot publish to a topic encrypted with the "
            "AWS-managed SNS key, and a customer key would add a fixed monthly fee to an idle deployment.",
        )
        if settings.email:
            self.topic.add_subscription(subscriptions.EmailSubscription(settings.email))
        self.alarms: list[cloudwatch.Alarm] = []

        rest = api.api
        stage = api.stage_name
        api_dims = {"ApiName": rest.rest_api_name, "Stage": stage}

        def api_metric(name: str, statistic: str, route=None) -> cloudwatch.Metric:
            dims = dict(api_dims)
            if route is not None:
                dims |= {"Method": route.method, "Resource": route.path}
            return cloudwatch.Metric(
                namespace="AWS/ApiGateway",
                metric_name=name,
                dimensions_map=dims,
                statistic=statistic,
                period=PERIOD,
                label=f"{route.method} {route.path}" if route is not None else None,
            )

        # Throttles and quota rejections are read from the access log (no code in the hot path).
        throttled = self._log_metric(
            api.access_logs,
            "Throttled",
            logs.FilterPattern.string_value("$.errorType", "=", "THROTTLED"),
            rest.rest_api_id,
        )
        # The runtime counts quota rejections itself (Powertools EMF, maas.metering.charge).
        quota = cloudwatch.Metric(
            namespace=constants.METRICS_NAMESPACE,
            metric_name=QUOTA_REJECTIONS,
            dimensions_map={"service": constants.SERVICE_NAME},
            statistic="Sum",
            period=PERIOD,
        )

        routes = api.routes
        widgets: list[cloudwatch.IWidget] = [
            cloudwatch.GraphWidget(
                title="Requests per route",
                left=[api_metric("Count", "Sum", r) for r in routes],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="4xx / 5xx per route",
                left=[api_metric("4XXError", "Sum", r) for r in routes],
                right=[api_metric("5XXError", "Sum", r) for r in routes],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Latency p50 per route (ms)", left=[api_metric("Latency", "p50", r) for r in routes], width=12
            ),
            cloudwatch.GraphWidget(
                title="Latency p99 per route (ms)", left=[api_metric("Latency", "p99", r) for r in routes], width=12
            ),
            cloudwatch.GraphWidget(
                title="Throttles",
                left=[throttled]
                + [f.function.function.metric_throttles(period=PERIOD, label=f"Lambda {f.name}") for f in functions],
                width=12,
            ),
            cloudwatch.GraphWidget(title="Quota rejections (monthly quota, from the runtime)", left=[quota], width=12),
            cloudwatch.GraphWidget(
                title="Invocations per model / function",
                left=[f.function.function.metric_invocations(period=PERIOD, label=f.name) for f in functions],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Dead-letter queue depth",
                left=[dead_letters.metric_approximate_number_of_messages_visible(period=PERIOD)],
                width=12,
            ),
        ]
        if gpu:
            widgets.append(
                cloudwatch.GraphWidget(
                    title="SageMaker invocations and errors",
                    left=[g.metric("Invocations").with_(label=f"{name} invocations") for name, g in gpu.items()],
                    right=[
                        g.metric(m).with_(label=f"{name} {m}")
                        for name, g in gpu.items()
                        for m in ("Invocation4XXErrors", "Invocation5XXErrors")
                    ],
                    width=24,
                )
            )
        self.dashboard = cloudwatch.Dashboard(
            self, "Dashboard", widgets=[widgets[i : i + 2] for i in range(0, len(widgets), 2)]
        )

        self._alarm(
            "Api5xx",
            api_metric("5XXError", "Sum").with_(period=ALARM_PERIOD),
            settings.api_5xx_per_5_min,
            "API 5xx responses",
        )
        self._alarm(
            "ApiLatencyP99",
            api_metric("Latency", "p99").with_(period=ALARM_PERIOD),
            settings.api_p99_latency_ms,
            "API p99 latency (ms)",
            evaluation_periods=3,
        )
        for f in functions:
            fn = f.function.function
            self._alarm(
                f"{f.name}-Errors",
                fn.metric_errors(period=ALARM_PERIOD),
                settings.function_errors_per_5_min,
                f"{f.name} function errors",
            )
            if f.alarm_throttles:
                self._alarm(f"{f.name}-Throttles", fn.metric_throttles(period=ALARM_PERIOD), 1, f"{f.name} throttles")
            if f.stream_consumer:
                self._alarm(
                    f"{f.name}-IteratorAge",
                    fn.metric("IteratorAge", period=ALARM_PERIOD, statistic="Maximum"),
                    STREAM_LAG_ALARM_MS,
                    f"{f.name} is more than {STREAM_LAG_ALARM_MS // 1000} s behind its stream",
                )
        self._alarm(
            "DeadLetters",
            dead_letters.metric_approximate_number_of_messages_visible(period=ALARM_PERIOD, statistic="Maximum"),
            1,
            "messages in the dead-letter queue",
        )
        for name, g in gpu.items():
            self._alarm(f"{name}-5xx", g.metric("Invocation5XXErrors"), 1, f"SageMaker {name} 5xx errors")

    def _log_metric(
        self, log_group: logs.ILogGroup, name: str, pattern: logs.IFilterPattern, api_id: str
    ) -> cloudwatch.Metric:
        logs.MetricFilter(
            self,
            f"Filter-{name}",
            log_group=log_group,
            metric_namespace=NAMESPACE,
            metric_name=name,
            filter_pattern=pattern,
            metric_value="1",
            dimensions={"ApiId": "$.apiId"},
        )
        return cloudwatch.Metric(
            namespace=NAMESPACE, metric_name=name, dimensions_map={"ApiId": api_id}, statistic="Sum", period=PERIOD
        )

    def _alarm(
        self, id: str, metric: cloudwatch.IMetric, threshold: float, what: str, evaluation_periods: int = 1
    ) -> cloudwatch.Alarm:
        alarm = metric.create_alarm(
            self,
            id,
            alarm_description=f"maas: {what} at or above {threshold}",
            threshold=threshold,
            evaluation_periods=evaluation_periods,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(actions.SnsAction(self.topic))
        alarm.add_ok_action(actions.SnsAction(self.topic))
        self.alarms.append(alarm)
        return alarm
