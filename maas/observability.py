"""Build a function's collaborators from its settings (called once, at init, by functions/*/app.py)."""

from __future__ import annotations

import logging

from maas.metering.charge import Billing
from maas.tenancy.plans import default_plans, load_plans


def billing_from_settings(settings, logger: logging.Logger, metrics=None) -> Billing:
    """Metering against the usage table the settings name; a plans file override if given."""
    plans = load_plans(settings.plans_file) if settings.plans_file else default_plans()
    if settings.metering == "off":
        logger.warning("metering is OFF: requests are neither authenticated against quotas nor billed")
        return Billing(None, plans, logger, metrics)
    import boto3  # only functions that meter import boto3

    from maas.metering.store import Meter

    return Billing(Meter(boto3.client("dynamodb"), settings.usage_table), plans, logger, metrics)


def make_tracer(service: str, environ=None):
    """Powertools' Tracer where it traces (in Lambda, unless POWERTOOLS_TRACE_DISABLED), else None.

    Outside Lambda the Tracer disables itself anyway, but importing the X-Ray SDK costs ~0.2 s of cold
    start; in Lambda with active tracing (the stack's default) that cost is paid, by choice.
    """
    import os

    environ = os.environ if environ is None else environ
    if not environ.get("AWS_LAMBDA_FUNCTION_NAME") or environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() == "true":
        return None
    from aws_lambda_powertools import Tracer

    return Tracer(service=service)  # patches botocore: DynamoDB calls become subsegments


def lambda_entry(api, logger, metrics=None):
    """The Lambda handler around an API callable: the request and correlation ids on every log line, and
    the EMF metrics flushed after each invocation that recorded some.

    Powertools' inject_lambda_context and log_metrics decorators do the same with more per-call work
    (~0.1-0.2 ms together: a JMESPath query, context capture, an empty-metrics warning when metering is off),
    which is several percent of a 2.5 ms inference; the static keys they add are set once here instead.
    """
    cold = {"start": True}

    def lambda_handler(event, context):
        request_id = (event.get("requestContext") or {}).get("requestId") if isinstance(event, dict) else None
        logger.append_keys(
            function_request_id=getattr(context, "aws_request_id", None),
            correlation_id=request_id,
            cold_start=cold["start"],
        )
        if cold["start"]:
            cold["start"] = False
            logger.append_keys(
                function_name=getattr(context, "function_name", None),
                function_memory_size=getattr(context, "memory_limit_in_mb", None),
            )
        try:
            return api(event, context)
        finally:
            if metrics is not None and metrics.metric_set:
                metrics.flush_metrics()

    return lambda_handler
