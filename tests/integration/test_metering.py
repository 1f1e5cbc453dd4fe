"""Metering and quotas against DynamoDB semantics (moto server, one request at a time like DynamoDB items)."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from maas.metering.store import Meter, QuotaExceeded, UsageEvent, day_of, month_of
from maas.tables import USAGE, create_table_kwargs


@pytest.fixture
def meter(aws):
    """A fresh usage table per test: moto's transactions copy the table, so a small one keeps them fast."""
    ddb = aws.client("dynamodb")
    name = f"usage-{uuid.uuid4().hex[:8]}"
    ddb.create_table(**create_table_kwargs(USAGE, name=name))
    yield Meter(ddb, name)
    ddb.delete_table(TableName=name)


def _event(tenant, units=10, rid=None, model="all-minilm-l6-v2", ts=None):
    return UsageEvent(
        request_id=rid or str(uuid.uuid4()),
        tenant_id=tenant,
        key_prefix="maas_abcdefgh",
        model=model,
        version="1",
        task="embeddings",
        units=units,
        compute_ms=2.5,
        time=ts or time.time(),
    )


def _tenant():
    return f"t-{uuid.uuid4().hex[:10]}"


def test_a_retried_request_id_is_billed_once(meter):
    tenant = _tenant()
    event = _event(tenant, units=7)
    assert meter.record(event, 1000)[0] is True
    assert meter.record(event, 1000)[0] is False  # same request id, e.g. a Lambda retry
    [row] = meter.monthly(tenant, month_of(event.time))
    assert (row["units"], row["requests"]) == (7, 1)
    assert meter.quota(tenant, 1000).consumed == 7


def test_500_concurrent_requests_from_3_tenants_aggregates_equal_events(meter):
    tenants = [_tenant() for _ in range(3)]
    start = time.time() - 1
    events = [_event(tenants[i % 3], units=1 + i % 13, model=["a", "b"][i % 2]) for i in range(500)]
    # 40 of them are delivered twice, concurrently with everything else
    deliveries = events + events[:40]
    with ThreadPoolExecutor(max_workers=32) as pool:
        billed = list(pool.map(lambda e: meter.record(e, 10**9)[0], deliveries))
    assert sum(billed) == 500
    end = time.time() + 1
    for tenant in tenants:
        stored = meter.events(tenant, start, end)
        assert len({e.request_id for e in stored}) == len(stored)  # no event twice
        expected = [e for e in events if e.tenant_id == tenant]
        assert sorted(e.request_id for e in stored) == sorted(e.request_id for e in expected)
        by_model = Counter()
        for e in stored:
            by_model[f"{e.model}@{e.version}"] += e.units
        day_rows = meter.daily(tenant, day_of(start), day_of(end))
        month_rows = meter.monthly(tenant, month_of(start))
        assert {r["model"]: r["units"] for r in month_rows} == dict(by_model)
        day_totals = Counter()
        for r in day_rows:
            day_totals[r["model"]] += r["units"]
        assert dict(day_totals) == dict(by_model)
        assert sum(r["requests"] for r in month_rows) == len(stored)
        assert meter.quota(tenant, 10**9).consumed == sum(by_model.values())


def test_50_concurrent_requests_with_room_for_20_exactly_20_succeed(meter):
    tenant = _tenant()
    outcomes = Counter()

    def call(_):
        try:
            meter.record(_event(tenant, units=5), quota_limit=100)
            return "ok"
        except QuotaExceeded:
            return "429"

    with ThreadPoolExecutor(max_workers=50) as pool:
        outcomes.update(pool.map(call, range(50)))
    assert outcomes == Counter({"ok": 20, "429": 30})
    status = meter.quota(tenant, 100)
    assert (status.consumed, status.remaining) == (100, 0)


def test_quota_error_says_what_remains_and_when_it_resets(meter):
    tenant = _tenant()
    meter.record(_event(tenant, units=8), quota_limit=10)
    with pytest.raises(QuotaExceeded) as exc:
        meter.record(_event(tenant, units=5), quota_limit=10)
    assert exc.value.status == 429
    assert "needs 5 units and 2 of 10 remain" in exc.value.message
    assert "resets at" in exc.value.message
    with pytest.raises(QuotaExceeded):
        meter.record(_event(tenant, units=11), quota_limit=10)  # larger than the whole quota


def test_failures_are_counted_apart_and_not_billed(meter):
    tenant = _tenant()
    meter.count_failure(tenant, 400)
    meter.count_failure(tenant, 404)
    meter.count_failure(tenant, 503)
    today = day_of(time.time())
    assert meter.failures(tenant, today, today) == [{"day": today, "status_4xx": 2, "status_5xx": 1}]
    assert meter.monthly(tenant, month_of(time.time())) == []
