"""Authentication context, quotas and exactly-once billing through the embeddings handler (emulator)."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from maas.metering.store import Meter, day_of, month_of
from maas.tables import USAGE
from maas.tenancy.plans import default_plans
from maas.tools.local.apigw import make_event
from maas.tools.local.functions import LambdaContext


@pytest.fixture
def meter(aws, usage_stream):
    """The usage table; its aggregates read after the stream is delivered (``aggregated``)."""
    return Meter(aws.client("dynamodb"), USAGE.local_name)


@pytest.fixture
def aggregated(meter, usage_stream):
    """The meter once the aggregator has caught up with the stream."""

    def read() -> Meter:
        usage_stream.drain()
        return meter

    return read


def _auth(plan="pro"):
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    return {"principalId": tenant, "tenant_id": tenant, "plan": plan, "key_prefix": "maas_abcd1234"}


def _event(body, auth, request_id=None, headers=None):
    return make_event(
        "POST",
        "/v1/embeddings",
        headers={"Content-Type": "application/json", **(headers or {})},
        body=json.dumps(body).encode(),
        authorizer=auth,
        request_id=request_id,
    )


def _call(handler, event):
    result = handler(event, LambdaContext())
    headers = {k: v[0] for k, v in result["multiValueHeaders"].items()}
    return result["statusCode"], json.loads(result["body"]), headers


def _consume(aws, auth, leave: int) -> None:
    """Lease the month's quota but ``leave`` units directly, as earlier traffic (other containers) would have."""
    quota = default_plans()[auth["plan"]].monthly_quota
    aws.client("dynamodb").update_item(
        TableName=USAGE.local_name,
        Key={"pk": {"S": f"TENANT#{auth['tenant_id']}"}, "sk": {"S": f"QUOTA#{month_of(time.time())}"}},
        UpdateExpression="SET #l = :q",
        ExpressionAttributeNames={"#l": "leased"},
        ExpressionAttributeValues={":q": {"N": str(quota - leave)}},
    )


def test_without_authorizer_context_the_request_is_refused(embeddings_handler):
    status, body, _ = _call(embeddings_handler, _event({"input": "hi"}, auth=None))
    assert status == 401 and body["error"]["type"] == "authentication_error"


def test_a_billable_call_writes_one_event_with_its_tokens(embeddings_handler, meter):
    auth = _auth()
    start = time.time() - 1
    status, body, headers = _call(embeddings_handler, _event({"input": ["one two", "three"]}, auth))
    assert status == 200
    [event] = meter.events(auth["tenant_id"], start, time.time() + 1)
    assert event.units == body["usage"]["total_tokens"]
    assert (event.model, event.version, event.task, event.key_prefix) == (
        "all-minilm-l6-v2",
        "1",
        "embeddings",
        "maas_abcd1234",
    )
    assert event.compute_ms > 0
    quota = default_plans()["pro"].monthly_quota
    assert headers["X-Quota-Limit"] == str(quota)
    assert headers["X-Quota-Remaining"] == str(quota - event.units)
    assert headers["X-Quota-Reset"].endswith("T00:00:00Z")


def test_the_same_event_twice_is_billed_once(embeddings_handler, meter, aggregated):
    auth = _auth()
    event = _event({"input": "retry me"}, auth, request_id=str(uuid.uuid4()))
    first = _call(embeddings_handler, event)
    second = _call(embeddings_handler, json.loads(json.dumps(event)))  # Lambda running the same event again
    assert first[0] == second[0] == 200
    assert first[1]["data"] == second[1]["data"]
    [row] = aggregated().monthly(auth["tenant_id"], month_of(time.time()))
    assert row["requests"] == 1 and row["units"] == first[1]["usage"]["total_tokens"]


def test_idempotency_key_makes_client_retries_bill_once(embeddings_handler, meter, aggregated):
    auth = _auth()
    for _ in range(3):  # three HTTP attempts: new API Gateway request ids, same Idempotency-Key
        event = _event({"input": "pay once"}, auth, headers={"Idempotency-Key": "order-42"})
        assert _call(embeddings_handler, event)[0] == 200
    [row] = aggregated().monthly(auth["tenant_id"], month_of(time.time()))
    assert row["requests"] == 1


def test_tenant_smuggled_in_body_or_headers_changes_nothing(embeddings_handler, meter, aggregated):
    auth, victim = _auth(), _auth()
    body = {"input": "hello", "tenant_id": victim["tenant_id"]}
    status, err, _ = _call(embeddings_handler, _event(body, auth))
    assert status == 400 and "Unsupported parameter: 'tenant_id'" in err["error"]["message"]
    headers = {"X-Tenant-Id": victim["tenant_id"], "x-maas-tenant": victim["tenant_id"]}
    assert _call(embeddings_handler, _event({"input": "hello"}, auth, headers=headers))[0] == 200
    assert aggregated().monthly(victim["tenant_id"], month_of(time.time())) == []
    assert aggregated().monthly(auth["tenant_id"], month_of(time.time()))[0]["requests"] == 1


def test_exhausted_quota_answers_429_with_reset_and_is_not_billed(embeddings_handler, meter, aws, aggregated):
    auth = _auth(plan="free")
    _consume(aws, auth, leave=3)
    status, body, headers = _call(embeddings_handler, _event({"input": "this needs more than three tokens"}, auth))
    assert status == 429 and body["error"]["code"] == "quota_exceeded"
    assert "resets at" in body["error"]["message"]
    assert headers["X-Quota-Remaining"] == "3"
    today = day_of(time.time())
    assert aggregated().failures(auth["tenant_id"], today, today)[0]["status_4xx"] == 1
    assert aggregated().daily(auth["tenant_id"], today, today) == []  # nothing billed


def test_failed_requests_are_counted_apart(embeddings_handler, meter, aggregated):
    auth = _auth()
    assert _call(embeddings_handler, _event({"input": []}, auth))[0] == 400
    assert _call(embeddings_handler, _event({"input": "x", "model": "nope"}, auth))[0] == 404
    today = day_of(time.time())
    assert aggregated().failures(auth["tenant_id"], today, today) == [{"day": today, "status_4xx": 2}]
    assert aggregated().monthly(auth["tenant_id"], month_of(time.time())) == []


def _value(v):
    return v[0] if isinstance(v, list) else v


def _emf(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{") and '"_aws"' in line]


def test_metrics_are_emitted_as_emf_per_model_and_task(embeddings_handler, capsys):
    assert _call(embeddings_handler, _event({"input": "count me"}, _auth()))[0] == 200
    [record] = _emf(capsys.readouterr().out)
    directive = record["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "maas"
    assert {"model", "task"} <= set(directive["Dimensions"][0])
    assert (record["model"], record["task"]) == ("all-minilm-l6-v2", "embeddings")
    assert _value(record["BilledRequests"]) == 1.0 and _value(record["BilledUnits"]) > 0


def test_quota_rejections_are_a_metric(embeddings_handler, aws, capsys):
    auth = _auth(plan="free")
    _consume(aws, auth, leave=0)
    assert _call(embeddings_handler, _event({"input": "no room"}, auth))[0] == 429
    [record] = _emf(capsys.readouterr().out)
    assert _value(record["QuotaRejections"]) == 1.0


@pytest.fixture
def model_runs(monkeypatch):
    """Counts the embedding model's runs (every text task runs TextEmbedder.embed)."""
    from maas.inference.embedder import TextEmbedder

    runs = []
    original = TextEmbedder.embed

    def counted(self, texts, encodings=None):
        runs.append(len(texts))
        return original(self, texts, encodings)

    monkeypatch.setattr(TextEmbedder, "embed", counted)
    return runs


def test_a_key_reused_with_a_larger_body_is_refused_and_never_runs(embeddings_handler, aggregated, model_runs):
    # GIVEN a free tenant's small billed call under an Idempotency-Key
    auth = _auth(plan="free")
    small = _event({"input": "hi"}, auth, headers={"Idempotency-Key": "k-1"})
    status, first, _ = _call(embeddings_handler, small)
    assert status == 200 and len(model_runs) == 1
    # WHEN the same key comes with a large request, or on another route
    large = _event({"input": ["a much longer text to embed " * 20] * 64}, auth, headers={"Idempotency-Key": "k-1"})
    status, body, _ = _call(embeddings_handler, large)
    # THEN 422 idempotency_key_reused, the model did not run again, and only the small call is billed
    assert status == 422 and body["error"]["code"] == "idempotency_key_reused"
    assert len(model_runs) == 1
    [row] = aggregated().monthly(auth["tenant_id"], month_of(time.time()))
    assert (row["requests"], row["units"]) == (1, first["usage"]["total_tokens"])


def test_a_retry_with_the_same_key_answers_the_same_and_is_billed_once(embeddings_handler, aggregated):
    auth = _auth()
    answers = [
        _call(embeddings_handler, _event({"input": ["same", "body"]}, auth, headers={"Idempotency-Key": "k-2"}))
        for _ in range(2)
    ]
    assert answers[0][1] == answers[1][1]
    assert answers[1][2].get("Idempotent-Replayed") == "true"
    [row] = aggregated().monthly(auth["tenant_id"], month_of(time.time()))
    assert row["requests"] == 1


def test_a_request_larger_than_what_remains_is_refused_before_the_model_runs(
    embeddings_handler, aws, aggregated, model_runs
):
    # GIVEN 61 units left this month
    auth = _auth(plan="free")
    _consume(aws, auth, leave=61)
    # WHEN a request of far more tokens arrives
    status, body, headers = _call(embeddings_handler, _event({"input": ["many tokens in this text " * 10] * 20}, auth))
    # THEN 429 with the quota headers, the model never ran, nothing billed; a small request still fits
    assert status == 429 and body["error"]["code"] == "quota_exceeded"
    assert headers["X-Quota-Remaining"] == "61"
    assert model_runs == []
    assert _call(embeddings_handler, _event({"input": "fits"}, auth))[0] == 200
    [row] = aggregated().monthly(auth["tenant_id"], month_of(time.time()))
    assert row["requests"] == 1 and row["units"] <= 61
