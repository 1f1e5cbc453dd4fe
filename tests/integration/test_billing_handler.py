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
def meter(aws):
    return Meter(aws.client("dynamodb"), USAGE.local_name)


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
    """Use up the month's quota but ``leave`` units directly, as earlier traffic would have."""
    quota = default_plans()[auth["plan"]].monthly_quota
    aws.client("dynamodb").update_item(
        TableName=USAGE.local_name,
        Key={"pk": {"S": f"TENANT#{auth['tenant_id']}"}, "sk": {"S": f"MONTH#{month_of(time.time())}"}},
        UpdateExpression="SET #c = :q",
        ExpressionAttributeNames={"#c": "consumed"},
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


def test_the_same_event_twice_is_billed_once(embeddings_handler, meter):
    auth = _auth()
    event = _event({"input": "retry me"}, auth, request_id=str(uuid.uuid4()))
    first = _call(embeddings_handler, event)
    second = _call(embeddings_handler, json.loads(json.dumps(event)))  # Lambda running the same event again
    assert first[0] == second[0] == 200
    assert first[1]["data"] == second[1]["data"]
    [row] = meter.monthly(auth["tenant_id"], month_of(time.time()))
    assert row["requests"] == 1 and row["units"] == first[1]["usage"]["total_tokens"]


def test_idempotency_key_makes_client_retries_bill_once(embeddings_handler, meter):
    auth = _auth()
    for _ in range(3):  # three HTTP attempts: new API Gateway request ids, same Idempotency-Key
        event = _event({"input": "pay once"}, auth, headers={"Idempotency-Key": "order-42"})
        assert _call(embeddings_handler, event)[0] == 200
    [row] = meter.monthly(auth["tenant_id"], month_of(time.time()))
    assert row["requests"] == 1


def test_tenant_smuggled_in_body_or_headers_changes_nothing(embeddings_handler, meter):
    auth, victim = _auth(), _auth()
    body = {"input": "hello", "tenant_id": victim["tenant_id"]}
    status, err, _ = _call(embeddings_handler, _event(body, auth))
    assert status == 400 and "Unsupported parameter: 'tenant_id'" in err["error"]["message"]
    headers = {"X-Tenant-Id": victim["tenant_id"], "x-maas-tenant": victim["tenant_id"]}
    assert _call(embeddings_handler, _event({"input": "hello"}, auth, headers=headers))[0] == 200
    assert meter.monthly(victim["tenant_id"], month_of(time.time())) == []
    assert meter.monthly(auth["tenant_id"], month_of(time.time()))[0]["requests"] == 1


def test_exhausted_quota_answers_429_with_reset_and_is_not_billed(embeddings_handler, meter, aws):
    auth = _auth(plan="free")
    _consume(aws, auth, leave=3)
    status, body, headers = _call(embeddings_handler, _event({"input": "this needs more than three tokens"}, auth))
    assert status == 429 and body["error"]["code"] == "quota_exceeded"
    assert "resets at" in body["error"]["message"]
    assert headers["X-Quota-Remaining"] == "3"
    today = day_of(time.time())
    assert meter.failures(auth["tenant_id"], today, today)[0]["status_4xx"] == 1
    assert meter.daily(auth["tenant_id"], today, today) == []  # nothing billed


def test_failed_requests_are_counted_apart(embeddings_handler, meter):
    auth = _auth()
    assert _call(embeddings_handler, _event({"input": []}, auth))[0] == 400
    assert _call(embeddings_handler, _event({"input": "x", "model": "nope"}, auth))[0] == 404
    today = day_of(time.time())
    assert meter.failures(auth["tenant_id"], today, today) == [{"day": today, "status_4xx": 2}]
    assert meter.monthly(auth["tenant_id"], month_of(time.time())) == []


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
