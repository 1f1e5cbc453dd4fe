"""Logger, metrics and tracer, created once per container, and ``lambda_entry``: the one Lambda handler shell.

Every functions/<name>/app.py ends with ``lambda_handler = lambda_entry(api)``, whatever ``api`` is: an HTTP
API, an API Gateway authorizer or a batch worker's event handler.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping

from aws_lambda_powertools import Logger, Metrics

from maas.settings.names import METRICS_NAMESPACE, SERVICE_NAME

logger = Logger(service=SERVICE_NAME)
# Powertools keeps one metric set per process, so this object is the functions' one EMF buffer.
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)


def make_tracer(service: str, environ: Mapping[str, str] | None = None):
    """Powertools' Tracer where it traces (in Lambda, unless POWERTOOLS_TRACE_DISABLED), else None.

    Outside Lambda the Tracer disables itself anyway, but importing the X-Ray SDK costs ~0.2 s of cold
    start; in Lambda with active tracing (the stack's default) that cost is paid, by choice.
    """
    environ = os.environ if environ is None else environ
    if not environ.get("AWS_LAMBDA_FUNCTION_NAME") or environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() == "true":
        return None
    from aws_lambda_powertools import Tracer

    return Tracer(service=service)  # patches botocore: DynamoDB calls become subsegments


@functools.cache
def get_tracer():
    """The container's one tracer (or None), made on first use: only functions that trace import the X-Ray SDK."""
    return make_tracer(SERVICE_NAME)


def lambda_entry(api: Callable[[dict, object], object]) -> Callable[[dict, object], object]:
    """The Lambda handler around ``api(event, context)``: the request and correlation ids on every log line,
    and the EMF metrics flushed after each invocation that recorded some.

    Powertools' inject_lambda_context and log_metrics decorators do the same with more per-call work
    (~0.1-0.2 ms together: a JMESPath query, context capture, an empty-metrics warning when metering is off),
    which is several percent of a 2.5 ms inference; the static keys they add are set once here instead.
    The correlation id is API Gateway's request id (HTTP and authorizer events); events without one (S3,
    SQS) log without it.
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
            if metrics.metric_set:
                metrics.flush_metrics()

    return lambda_handler
