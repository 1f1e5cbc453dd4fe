"""GET /v1/usage through functions/usage/app.py on API Gateway events (emulator): the caller's own usage only,
totals, this month's quota, failures, the error shape, and the route behind the local gateway."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from maas.metering.store import Meter, UsageEvent
from maas.tables import API_KEYS, TENANTS, USAGE
from maas.tenancy.plans import default_plans
from maas.tenancy.store import TenantStore
from maas.tools import paths
from maas.tools.cli import main
from maas.tools.local.apigw import make_event
from maas.tools.local.emulator import aws_env, table_env
from maas.tools.local.functions import LambdaContext, load_handler


@pytest.fixture(scope="module")
def usage_handler(aws):
    return load_handler("usage", {**aws_env(aws.url), **table_env()})


@pytest.fixture
def meter(aws, usage_stream):
    """The usage table; what tests record is aggregated (the stream drained) before the handler reads it."""
    meter = Meter(aws.client("dynamodb"), USAGE.local_name)
    meter.aggregate = usage_stream.drain
    return meter


def _auth(plan="pro"):
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    return {"principalId": tenant, "tenant_id": tenant, "plan": plan, "key_prefix": "maas_abcd1234"}


def _at(day: str, hour: int = 12) -> float:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC).timestamp()


def _record(meter, auth, model, units, ts, task="embeddings", ms=2.5):
    """A billed call's usage event, aggregated as the stream's consumer would."""
    event = UsageEvent(str(uuid.uuid4()), auth["tenant_id"], auth["key_prefix"], model, "1", task, units, ms, ts)
    billed, _ = meter.put_event(event)
    assert billed
    meter.aggregate()


def _get(handler, auth, query="", headers=None):
    event = make_event("GET", "/v1/usage", query=query, headers=headers, authorizer=auth)
    result = handler(event, LambdaContext(function_name="maas-usage-test"))
    assert result["multiValueHeaders"]["Content-Type"] == ["application/json"]
    return result["statusCode"], json.loads(result["body"])


@pytest.fixture
def two_tenants(meter):
    """Tenants A and B, each with usage on 2025-03-10 and 2025-03-11 (different models and amounts)."""
    a, b = _auth(), _auth("enterprise")
    _record(meter, a, "minilm", 10, _at("2025-03-10"))
    _record(meter, a, "minilm", 5, _at("2025-03-10", 13), ms=1.25)
    _record(meter, a, "clf", 7, _at("2025-03-11"), task="classify")
    _record(meter, b, "minilm", 1000, _at("2025-03-10"))
    _record(meter, b, "vit", 3, _at("2025-03-11"), task="image-classify")
    return a, b


MARCH = "start=2025-03-10&end=2025-03-11"


def test_a_tenant_sees_only_its_own_usage(usage_handler, two_tenants):
    a, b = two_tenants
    status, body = _get(usage_handler, a, MARCH)
    assert status == 200
    assert (body["object"], body["tenant_id"], body["plan"]) == ("usage", a["tenant_id"], "pro")
    assert (body["start"], body["end"]) == ("2025-03-10", "2025-03-11")
    assert body["data"] == [
        {"date": "2025-03-10", "model": "minilm@1", "units": 15, "requests": 2, "compute_ms": 3.75},
        {"date": "2025-03-11", "model": "clf@1", "units": 7, "requests": 1, "compute_ms": 2.5},
    ]
    status, body = _get(usage_handler, b, MARCH)
    assert status == 200 and body["tenant_id"] == b["tenant_id"]
    assert [(r["model"], r["units"]) for r in body["data"]] == [("minilm@1", 1000), ("vit@1", 3)]


def test_totals_are_the_sums_of_the_rows(usage_handler, two_tenants):
    for auth in two_tenants:
        _, body = _get(usage_handler, auth, MARCH)
        assert body["totals"] == {
            "units": sum(r["units"] for r in body["data"]),
            "requests": sum(r["requests"] for r in body["data"]),
        }
    assert _get(usage_handler, two_tenants[0], MARCH)[1]["totals"] == {"units": 22, "requests": 3}


def test_the_range_is_inclusive_and_bounds_the_rows(usage_handler, two_tenants):
    a, _ = two_tenants
    _, body = _get(usage_handler, a, "start=2025-03-11&end=2025-03-11")
    assert [(r["date"], r["model"]) for r in body["data"]] == [("2025-03-11", "clf@1")]
    _, body = _get(usage_handler, a, "start=2025-03-12&end=2025-03-31")
    assert body["data"] == [] and body["totals"] == {"units": 0, "requests": 0}


def test_default_range_is_this_month_and_quota_counts_this_month_only(usage_handler, meter):
    auth = _auth("free")
    today = datetime.now(UTC).date()
    first = today.replace(day=1)
    _record(meter, auth, "minilm", 40, datetime.now(UTC).timestamp())
    _record(meter, auth, "minilm", 2, datetime.now(UTC).timestamp())
    _record(meter, auth, "minilm", 500, _at((first - timedelta(days=1)).isoformat()))  # last month: not counted
    status, body = _get(usage_handler, auth)
    assert status == 200
    assert (body["start"], body["end"]) == (first.isoformat(), today.isoformat())
    assert [(r["date"], r["units"], r["requests"]) for r in body["data"]] == [(today.isoformat(), 42, 2)]
    limit = default_plans()["free"].monthly_quota
    reset = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    assert body["quota"] == {
        "limit": limit,
        "consumed": 42,
        "remaining": limit - 42,
        "reset": f"{reset.isoformat()}T00:00:00Z",
    }
    # A past range shows that range's rows, but the quota block is still this month's.
    day = (first - timedelta(days=1)).isoformat()
    _, past = _get(usage_handler, auth, f"start={day}&end={day}")
    assert [r["units"] for r in past["data"]] == [500] and past["quota"]["consumed"] == 42


def test_failed_requests_are_listed_per_day(usage_handler, meter):
    auth = _auth()
    for status in (400, 429, 503):
        meter.count_failure(auth["tenant_id"], status, str(uuid.uuid4()), now=_at("2025-04-02"))
    meter.count_failure(auth["tenant_id"], 404, str(uuid.uuid4()), now=_at("2025-04-03"))
    meter.count_failure(auth["tenant_id"], 500, str(uuid.uuid4()), now=_at("2025-05-01"))  # outside the range
    meter.aggregate()
    _, body = _get(usage_handler, auth, "start=2025-04-01&end=2025-04-30")
    assert body["failed"] == [
        {"date": "2025-04-02", "status_4xx": 2, "status_5xx": 1},
        {"date": "2025-04-03", "status_4xx": 1, "status_5xx": 0},
    ]
    assert body["data"] == []  # failures are not usage


@pytest.mark.parametrize(
    "query,param",
    [
        ("start=2025-13-01", "start"),
        ("start=yesterday", "start"),
        ("start=2025-3-1", "start"),
        ("end=20250301", "end"),
        ("end=", "end"),
        ("start=2025-03-10&end=2025-03-09", "start"),  # start after end
        ("start=2024-01-01&end=2025-01-01", "start"),  # 367 days
    ],
)
def test_bad_dates_and_ranges_are_400_in_the_error_shape(usage_handler, query, param):
    status, body = _get(usage_handler, _auth(), query)
    assert status == 400
    assert set(body) == {"error"}
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["code"] in ("invalid_date", "invalid_range")
    assert body["error"]["param"] == param and f"'{param}'" in body["error"]["message"]


def test_the_longest_range_is_366_days(usage_handler):
    status, body = _get(usage_handler, _auth(), "start=2024-01-01&end=2024-12-31")
    assert status == 200 and (body["start"], body["end"]) == ("2024-01-01", "2024-12-31")


def test_without_authorizer_context_it_is_401(usage_handler):
    status, body = _get(usage_handler, None)
    assert status == 401 and body["error"]["type"] == "authentication_error"


def test_a_plan_the_function_does_not_know_is_401(usage_handler):
    status, body = _get(usage_handler, _auth(plan="gold"))
    assert status == 401 and body["error"]["code"] == "unknown_plan"


def test_a_tenant_smuggled_in_query_or_headers_changes_nothing(usage_handler, two_tenants):
    a, b = two_tenants
    _, honest = _get(usage_handler, a, MARCH)
    headers = {"X-Tenant-Id": b["tenant_id"], "x-maas-tenant": b["tenant_id"], "x-api-key": "maas_victim"}
    query = f"{MARCH}&tenant_id={b['tenant_id']}&tenant={b['tenant_id']}"
    status, body = _get(usage_handler, a, query, headers=headers)
    assert status == 200 and body == honest
    assert body["tenant_id"] == a["tenant_id"] and "vit@1" not in {r["model"] for r in body["data"]}


def test_openapi_document_describes_the_route_from_the_response_model(usage_handler):
    event = make_event("GET", "/openapi.json")
    result = usage_handler(event, LambdaContext())
    doc = json.loads(result["body"])
    operation = doc["paths"]["/v1/usage"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"start", "end"}
    assert {"200", "400", "401"} <= set(operation["responses"])
    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert {"tenant_id", "plan", "start", "end", "data", "totals", "quota", "failed"} <= set(schema["properties"])


def test_invoke_on_the_sample_event(capsys, tmp_path):
    # `maas invoke` insists on an existing model package path even for a function that loads no model.
    code = main(
        [
            "invoke",
            "usage",
            "--event",
            str(paths.EVENTS_DIR / "usage-get.json"),
            "--env",
            f"MAAS_MODEL_SOURCE={tmp_path}",
        ]
    )
    out = capsys.readouterr().out
    result = json.loads(out[out.index('{\n  "statusCode"') :])
    assert code == 0 and result["statusCode"] == 200
    body = json.loads(result["body"])
    assert (body["tenant_id"], body["plan"], body["start"], body["end"]) == ("demo", "free", "2026-11-01", "2026-11-18")


# --- behind the local gateway: a real key, the real authorizer ----------------------------------------------


@pytest.fixture(scope="module")
def gateway(aws):
    from maas.tools.local.server import AUTHORIZER_FUNCTION, ROUTES, LocalApi, LocalGateway

    env = {**aws_env(aws.url), **table_env()}
    routes = [r for r in ROUTES if r.function == "usage"]
    api = LocalApi(
        routes,
        env={"usage": env, AUTHORIZER_FUNCTION: env},
        default_function="usage",
        gateway=LocalGateway(cache_ttl_s=0),
    )
    api.load()
    return api


def test_through_the_gateway_a_key_reads_its_own_tenants_usage(gateway, aws, meter):
    store = TenantStore(aws.client("dynamodb"), TENANTS.local_name, API_KEYS.local_name, default_plans())
    mine = store.create_tenant("Mine", "pro", tenant_id=f"mine-{uuid.uuid4().hex[:8]}")
    other = store.create_tenant("Other", "pro", tenant_id=f"other-{uuid.uuid4().hex[:8]}")
    key, record = store.create_key(mine.tenant_id)
    _record(meter, {"tenant_id": other.tenant_id, "key_prefix": "maas_x", "plan": "pro"}, "m", 9, _at("2025-06-01"))
    _record(meter, {"tenant_id": mine.tenant_id, "key_prefix": record.prefix, "plan": "pro"}, "m", 4, _at("2025-06-01"))
    target = f"/v1/usage?start=2025-06-01&end=2025-06-01&tenant_id={other.tenant_id}"
    status, _, raw = gateway.handle("GET", target, [("Authorization", f"Bearer {key}")], b"")
    body = json.loads(raw)
    assert status == 200 and body["tenant_id"] == mine.tenant_id
    assert [r["units"] for r in body["data"]] == [4]
    status, _, raw = gateway.handle("GET", "/v1/usage", [], b"")
    assert status == 401 and json.loads(raw)["error"]["type"] == "authentication_error"
