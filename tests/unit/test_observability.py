"""lambda_entry, the one handler shell: log keys, metrics flush, any callable (HTTP API, authorizer, worker)."""

import json

import pytest

from maas.observability import lambda_entry, logger, metrics
from maas.tools.local.functions import LambdaContext


@pytest.fixture(autouse=True)
def clean_observability():
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()
    logger.remove_keys(["correlation_id", "function_request_id", "cold_start", "function_name"])


def test_an_http_event_logs_under_its_api_gateway_request_id():
    # GIVEN an API callable wrapped by the shell
    handler = lambda_entry(lambda event, context: {"statusCode": 200})
    context = LambdaContext(function_name="maas-rerank")

    # WHEN an API Gateway event arrives
    out = handler({"requestContext": {"requestId": "req-1"}}, context)

    # THEN the answer passes through and every log line carries the ids and the function's name
    keys = logger.get_current_keys()
    assert out == {"statusCode": 200}
    assert keys["correlation_id"] == "req-1"
    assert keys["function_request_id"] == context.aws_request_id
    assert keys["function_name"] == "maas-rerank"


def test_a_callable_that_is_not_an_http_api_is_wrapped_the_same_way():
    # GIVEN a batch worker's handler and an SQS event (no requestContext)
    seen = []
    handler = lambda_entry(lambda event, context: seen.append(event) or {"batchItemFailures": []})

    # WHEN two events arrive in the same container
    first = handler({"Records": []}, LambdaContext())
    cold = logger.get_current_keys()["cold_start"]
    handler({"Records": []}, LambdaContext())

    # THEN the worker gets the event unchanged, only the first call is cold and no correlation id is invented
    assert first == {"batchItemFailures": []} and len(seen) == 2
    assert (cold, logger.get_current_keys()["cold_start"]) == (True, False)
    assert logger.get_current_keys().get("correlation_id") is None


def test_metrics_recorded_by_an_invocation_are_flushed_even_when_it_fails(capsys):
    # GIVEN an API that records a metric and then fails
    def api(event, context):
        metrics.add_metric(name="BilledRequests", unit="Count", value=1)
        raise RuntimeError("boom")

    handler = lambda_entry(api)

    # WHEN it is invoked
    with pytest.raises(RuntimeError):
        handler({}, LambdaContext())

    # THEN the metric was written as one EMF document and the buffer is empty for the next invocation
    emf = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert emf["BilledRequests"] == [1.0] and emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "maas"
    assert not metrics.metric_set


def test_an_invocation_without_metrics_writes_no_metrics_document(capsys):
    # GIVEN an API that records nothing (metering off, or the authorizer)
    handler = lambda_entry(lambda event, context: None)

    # WHEN it is invoked
    handler({}, LambdaContext())

    # THEN nothing is flushed: no empty EMF document, no warning
    assert "_aws" not in capsys.readouterr().out
