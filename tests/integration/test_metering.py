"""Metering and quotas against DynamoDB semantics (moto server): the promises of maas/metering/README.md,
each with a failure injected where it could break.

Every test ends by checking the invariants (`assert_invariants`): each billed request id has exactly one event,
the aggregates equal the sum of the events, and no month's billed units exceed the quota.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maas.errors import ApiError
from maas.inference.package import Manifest
from maas.metering import leases as leases_module
from maas.metering.aggregator import Aggregator
from maas.metering.charge import Billing
from maas.metering.store import IdempotencyKeyReused, Meter, QuotaExceeded, day_of, month_of
from maas.tables import USAGE, create_table_kwargs
from maas.tenancy.plans import Plan
from maas.tools.local.streams import StreamDriver

MANIFEST = Manifest.model_construct(name="all-minilm-l6-v2", version="1", task="embeddings")


class Clock:
    def __init__(self, now: float | None = None):
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now


class Usage:
    """A fresh usage table (with its stream), the aggregator fed from it, and invariant checks."""

    def __init__(self, aws):
        self.ddb = aws.client("dynamodb")
        self.table = f"usage-{uuid.uuid4().hex[:8]}"
        self.ddb.create_table(**create_table_kwargs(USAGE, name=self.table))
        self.meter = Meter(self.ddb, self.table)
        self.aggregator = Aggregator(self.meter)
        self.stream = StreamDriver(self.ddb, aws.client("dynamodbstreams"), self.table, self.aggregator)

    def billing(self, quota: int = 10**9, clock=None, meter: Meter | None = None) -> Billing:
        """One container's billing (its own quota leases) on the shared table."""
        plans = {
            "test": Plan(
                name="test", monthly_quota=quota, rate_limit=100, burst_limit=100, price_per_million_units_usd={}
            )
        }
        return Billing(meter or self.meter, plans, clock=clock or time.time)

    def events(self, tenant: str) -> list:
        return self.meter.events(tenant, 0, 4 * 10**9)

    def assert_invariants(self, tenant: str, quota: int | None = None) -> list:
        """Drain the stream; then events are unique, aggregates equal them, quota holds. Returns the events."""
        self.stream.drain()
        events = self.events(tenant)
        assert len({e.request_id for e in events}) == len(events)
        months, days = Counter(), Counter()
        for e in events:
            months[(month_of(e.time), e.model_id)] += e.units
            days[(day_of(e.time), e.model_id)] += e.units
        stored_months = Counter()
        for month in {m for m, _ in months}:
            rows = self.meter.monthly(tenant, month)
            stored_months.update({(month, r["model"]): r["units"] for r in rows})
            assert sum(r["requests"] for r in rows) == sum(1 for e in events if month_of(e.time) == month)
            assert self.meter.quota(tenant, quota or 1).consumed == sum(
                e.units for e in events if month_of(e.time) == month_of(time.time())
            ) or month != month_of(time.time())
            if quota is not None:
                assert sum(r["units"] for r in rows) <= quota
        assert stored_months == months
        if days:
            first, last = min(d for d, _ in days), max(d for d, _ in days)
            stored_days = Counter(
                {(r["period"], r["model"]): r["units"] for r in self.meter.daily(tenant, first, last)}
            )
            assert stored_days == days
        return events

    def drop(self):
        self.ddb.delete_table(TableName=self.table)


@pytest.fixture
def usage(aws):
    u = Usage(aws)
    yield u
    u.drop()


def _tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def _caller(tenant: str):
    from maas.tenancy.store import Caller

    return Caller(tenant_id=tenant, plan="test", key_prefix="maas_abcdefgh")


def _event(body: str = '{"input": "hi"}', key: str | None = None, path: str = "/v1/embeddings") -> dict:
    headers = {"Content-Type": "application/json", **({"Idempotency-Key": key} if key else {})}
    return {
        "httpMethod": "POST",
        "path": path,
        "headers": headers,
        "body": body,
        "requestContext": {"requestId": str(uuid.uuid4())},
    }


def serve(billing: Billing, tenant: str, units: int, event: dict | None = None, crash: str | None = None):
    """One request the way maas.api.metered runs it: admit -> reserve -> (model) -> commit; ``crash`` stops it
    at a step as a dying container would (nothing after that step happens)."""
    caller = _caller(tenant)
    ticket = billing.admit(caller, event or _event())
    billing.reserve(ticket, units)
    if crash == "before_commit":
        return "crashed"
    billing.commit(ticket, MANIFEST, units, 1.0)
    if crash == "after_commit":
        return "crashed"
    return "replayed" if ticket.replay else "ok"


def test_a_retried_request_id_is_billed_once(usage):
    # GIVEN a request billed once
    tenant, billing = _tenant(), usage.billing()
    event = _event()
    serve(billing, tenant, 7, event)
    # WHEN the same event runs again (a Lambda retry keeps API Gateway's request id)
    serve(billing, tenant, 7, event)
    # THEN one event, 7 units
    [row] = usage.meter.monthly(tenant, month_of(time.time())) or [None]
    assert row is None  # nothing is aggregated before the stream is processed
    events = usage.assert_invariants(tenant)
    assert [e.units for e in events] == [7]
    assert usage.meter.quota(tenant, 1000).consumed == 7


def test_500_concurrent_requests_from_3_tenants_in_4_containers_aggregates_equal_events(usage):
    # GIVEN 3 tenants and 4 containers, 40 requests delivered twice concurrently with everything else
    tenants = [_tenant() for _ in range(3)]
    containers = [usage.billing() for _ in range(4)]
    requests = [(tenants[i % 3], 1 + i % 13, _event(f'{{"input": "{i}"}}')) for i in range(500)]
    deliveries = list(enumerate(requests)) + list(enumerate(requests[:40]))
    # WHEN they are served
    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(lambda d: serve(containers[d[0] % 4], d[1][0], d[1][1], d[1][2]), deliveries))
    # THEN each is billed once and the aggregates equal the events
    for tenant in tenants:
        events = usage.assert_invariants(tenant)
        expected = [r for r in requests if r[0] == tenant]
        assert len(events) == len(expected)
        assert sum(e.units for e in events) == sum(units for _, units, _ in expected)


def test_50_concurrent_requests_with_room_for_20_exactly_20_succeed(usage):
    # GIVEN room for 20 requests of 5 units
    tenant, billing = _tenant(), usage.billing(quota=100)
    outcomes = Counter()

    def call(_):
        try:
            return serve(billing, tenant, 5)
        except QuotaExceeded:
            return "429"

    # WHEN 50 arrive at once
    with ThreadPoolExecutor(max_workers=50) as pool:
        outcomes.update(pool.map(call, range(50)))
    # THEN exactly 20 are served, and the month is exactly used up
    assert outcomes == Counter({"ok": 20, "429": 30})
    usage.assert_invariants(tenant, quota=100)
    assert usage.meter.quota(tenant, 100).remaining == 0


def test_quota_error_says_what_remains_and_when_it_resets(usage):
    tenant, billing = _tenant(), usage.billing(quota=10)
    serve(billing, tenant, 8)
    with pytest.raises(QuotaExceeded) as exc:
        serve(billing, tenant, 5)
    assert exc.value.status == 429
    assert "needs 5 units and 2 of 10 remain" in exc.value.message
    assert "resets at" in exc.value.message
    with pytest.raises(QuotaExceeded):
        serve(billing, tenant, 11)  # larger than the whole quota


def test_failures_are_counted_apart_and_not_billed(usage):
    tenant, billing = _tenant(), usage.billing()
    for status in (400, 404, 503):
        error = type(f"Status{status}", (ApiError,), {"status": status})("refused")
        billing.failed(_caller(tenant), error, str(uuid.uuid4()))
    usage.stream.drain()
    today = day_of(time.time())
    assert usage.meter.failures(tenant, today, today) == [{"day": today, "status_4xx": 2, "status_5xx": 1}]
    assert usage.meter.monthly(tenant, month_of(time.time())) == []


def test_an_idempotency_key_reused_with_another_body_is_refused_before_anything_runs(usage):
    # GIVEN a billed request under an Idempotency-Key
    tenant, billing = _tenant(), usage.billing()
    serve(billing, tenant, 3, _event('{"input": "small"}', key="k1"))
    usage.stream.drain()
    # WHEN the key comes back with a larger body, or on another route
    for event in (
        _event('{"input": "' + "large " * 5000 + '"}', key="k1"),
        _event('{"input": "small"}', "k1", "/v1/rerank"),
    ):
        # THEN admit refuses it (422) before any reservation or model run
        with pytest.raises(IdempotencyKeyReused) as exc:
            billing.admit(_caller(tenant), event)
        assert (exc.value.status, exc.value.code) == (422, "idempotency_key_reused")
    events = usage.assert_invariants(tenant)
    assert [e.units for e in events] == [3]


def test_a_retry_with_the_same_key_and_body_is_served_once_billed_once(usage):
    tenant, billing = _tenant(), usage.billing()
    first = serve(billing, tenant, 4, _event("{}", key="k2"))
    again = serve(billing, tenant, 4, _event("{}", key="k2"))  # a new API Gateway request id, the same key
    assert (first, again) == ("ok", "replayed")
    assert [e.units for e in usage.assert_invariants(tenant)] == [4]


def test_a_key_is_bound_for_24_hours_then_free(usage):
    clock = Clock()
    tenant, billing = _tenant(), usage.billing(clock=clock)
    serve(billing, tenant, 2, _event('{"a": 1}', key="k3"))
    with pytest.raises(IdempotencyKeyReused):
        billing.admit(_caller(tenant), _event('{"a": 2}', key="k3"))
    clock.now += 24 * 3600 + 1
    assert serve(billing, tenant, 2, _event('{"a": 2}', key="k3")) == "ok"
    assert serve(billing, tenant, 2, _event('{"a": 2}', key="k3")) == "replayed"
    assert len(usage.events(tenant)) == 2


def test_a_crash_after_the_event_write_then_a_retry_bills_once(usage):
    tenant, billing = _tenant(), usage.billing()
    assert serve(billing, tenant, 6, _event("{}", key="k4"), crash="after_commit") == "crashed"
    assert serve(usage.billing(), tenant, 6, _event("{}", key="k4")) == "replayed"  # another container
    assert [e.units for e in usage.assert_invariants(tenant)] == [6]


def test_a_crash_before_the_event_write_bills_nothing(usage):
    tenant, billing = _tenant(), usage.billing()
    serve(billing, tenant, 6, crash="before_commit")
    assert usage.assert_invariants(tenant) == []


class FailingClient:
    """A DynamoDB client whose ``method`` raises once, on its ``nth`` call (a crash at that step)."""

    def __init__(self, client, method: str, nth: int = 1):
        self._client, self._method, self._left = client, method, nth

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if name != self._method:
            return attr

        def call(**kwargs):
            self._left -= 1
            if self._left == 0:
                raise ConnectionError(f"injected failure in {name}")
            return attr(**kwargs)

        return call


def test_a_crash_during_aggregation_then_redelivery_counts_each_event_once(usage):
    # GIVEN 30 billed events
    tenant, billing = _tenant(), usage.billing()
    for _ in range(30):
        serve(billing, tenant, 2)
    # WHEN the aggregator's transaction fails (the function dies) and the stream redelivers the batch
    usage.aggregator.meter = Meter(FailingClient(usage.ddb, "transact_write_items"), usage.table)
    with pytest.raises(ConnectionError):
        usage.stream.drain()
    usage.aggregator.meter = usage.meter
    # THEN after redelivery every event counts once
    events = usage.assert_invariants(tenant)
    assert sum(e.units for e in events) == 60


def test_a_batch_delivered_twice_is_applied_once(usage):
    tenant, billing = _tenant(), usage.billing()
    for _ in range(10):
        serve(billing, tenant, 3)
    shard = usage.stream._shards()[0]
    it = usage.stream.streams.get_shard_iterator(
        StreamArn=usage.stream.arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )
    records = usage.stream.streams.get_records(ShardIterator=it["ShardIterator"])["Records"]
    batch = {"Records": records, "shardId": shard}
    assert usage.aggregator.apply(shard, records) == 10
    assert usage.aggregator.apply(shard, records) == 0  # the same batch again
    assert usage.aggregator.apply(shard, records[3:8]) == 0  # an overlapping part of it
    usage.aggregator(batch)
    assert usage.meter.monthly(tenant, month_of(time.time()))[0]["units"] == 30
    usage.assert_invariants(tenant)


def test_a_container_dying_with_leased_units_returns_them_after_its_window(usage):
    # GIVEN container A leases a large block (steady traffic) and dies holding most of it
    clock = Clock(datetime(2026, 12, 10, 12, 0, tzinfo=UTC).timestamp())
    tenant = _tenant()
    a, b = usage.billing(quota=1000, clock=clock), usage.billing(quota=1000, clock=clock)
    for _ in range(40):
        serve(a, tenant, 5)
    leased = usage.meter.quota_item(tenant, month_of(clock.now))["leased"]
    # WHEN container B needs more than the unleased rest
    need = 1000 - leased + 1
    with pytest.raises(QuotaExceeded):
        serve(b, tenant, need)
    usage.stream.drain()  # the aggregator counts what A's window used
    # THEN once A's window has closed and settled, B gets A's unused units: 1000 - 200 fit
    clock.now += leases_module.WINDOW_S + leases_module.SETTLE_AFTER_S
    assert serve(b, tenant, 800) == "ok"
    with pytest.raises(QuotaExceeded):
        serve(b, tenant, 1)
    events = usage.assert_invariants(tenant, quota=1000)
    assert sum(e.units for e in events) == 1000


def test_the_month_boundary_starts_a_fresh_quota_and_bills_each_month_its_own(usage):
    # GIVEN a tenant that used its whole November quota a second before midnight
    clock = Clock(datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC).timestamp())
    tenant, billing = _tenant(), usage.billing(quota=50, clock=clock)
    serve(billing, tenant, 50)
    with pytest.raises(QuotaExceeded):
        serve(billing, tenant, 1)
    # WHEN the clock passes midnight
    clock.now += 1.5
    serve(billing, tenant, 20)
    # THEN December has its own quota and aggregates
    usage.stream.drain()
    assert usage.meter.monthly(tenant, "2026-11")[0]["units"] == 50
    assert usage.meter.monthly(tenant, "2026-12")[0]["units"] == 20
    assert usage.meter.daily(tenant, "2026-11-30", "2026-12-01")[0]["units"] == 50
    usage.assert_invariants(tenant, quota=50)


class CountingClient:
    """Counts writes per item (pk, sk): put_item, update_item and every item of a transaction."""

    def __init__(self, client):
        self._client = client
        self.writes = Counter()

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if name in ("put_item", "update_item"):

            def call(**kwargs):
                key = kwargs.get("Item") or kwargs["Key"]
                self.writes[(key["pk"]["S"], key["sk"]["S"])] += 1
                return attr(**kwargs)

            return call
        if name == "transact_write_items":

            def call(**kwargs):
                for entry in kwargs["TransactItems"]:
                    op = next(iter(entry.values()))
                    key = op.get("Item") or op["Key"]
                    self.writes[(key["pk"]["S"], key["sk"]["S"])] += 1
                return attr(**kwargs)

            return call
        return attr


def test_2000_billed_calls_write_no_item_more_than_40_times(usage):
    # GIVEN one tenant's calls through 4 containers, and the aggregator, all counting writes per item
    counting = CountingClient(usage.ddb)
    meter = Meter(counting, usage.table)
    usage.aggregator.meter = meter
    tenant = _tenant()
    containers = [usage.billing(meter=meter) for _ in range(4)]
    # WHEN 2,000 calls are billed (the stream drained every 500, as the event source mapping's batches)
    with ThreadPoolExecutor(max_workers=8) as pool:
        for start in range(0, 2000, 500):
            list(pool.map(lambda i: serve(containers[i % 4], tenant, 3), range(start, start + 500)))
            usage.stream.drain()
    # THEN every event item was written once, and no shared item more than 40 times
    usage.aggregator.meter = usage.meter
    events = usage.assert_invariants(tenant)
    assert len(events) == 2000
    shared = {k: n for k, n in counting.writes.items() if not k[0].startswith("EVENT#")}
    assert max(n for k, n in counting.writes.items() if k[0].startswith("EVENT#")) == 1
    assert max(shared.values()) <= 40, shared


# -- property: random interleavings of requests, retries, crashes and stream deliveries -----------------------

request_ops = st.tuples(
    st.just("request"),
    st.integers(0, 2),  # container
    st.integers(0, 1),  # tenant
    st.integers(1, 30),  # units
    st.sampled_from([None, "before_commit", "after_commit"]),  # where the container dies, if it does
    st.booleans(),  # sent with an Idempotency-Key
)
retry_ops = st.tuples(st.just("retry"), st.integers(0, 2), st.integers(0, 50))  # replay an earlier request
delivery_ops = st.tuples(st.just("deliver"), st.booleans())  # drain the stream; True: deliver it twice


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.one_of(request_ops, retry_ops, delivery_ops), min_size=5, max_size=40))
def test_any_interleaving_bills_each_served_request_once_within_quota(aws, ops):
    usage = Usage(aws)
    try:
        quota = 200
        tenants = [_tenant(), _tenant()]
        containers = [usage.billing(quota=quota) for _ in range(3)]
        sent: list[tuple[str, int, dict]] = []  # (tenant, units, event) of every request sent
        billed_ids: set[str] = set()
        for op in ops:
            if op[0] == "deliver":
                usage.stream.drain()
                if op[1]:  # the event source mapping delivers the shard's records again
                    shard = usage.stream._shards()[0]
                    it = usage.stream.streams.get_shard_iterator(
                        StreamArn=usage.stream.arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
                    )["ShardIterator"]
                    records = usage.stream.streams.get_records(ShardIterator=it)["Records"]
                    assert usage.aggregator.apply(shard, records) == 0
                continue
            if op[0] == "retry":
                if not sent:
                    continue
                tenant, units, event = sent[op[2] % len(sent)]
                container, crash = containers[op[1]], None
            else:
                _, c, t, units, crash, keyed = op
                tenant, container = tenants[t], containers[c]
                event = _event(f'{{"input": "{uuid.uuid4().hex}"}}', key=uuid.uuid4().hex if keyed else None)
                sent.append((tenant, units, event))
            try:
                outcome = serve(container, tenant, units, event, crash=crash)
            except QuotaExceeded:
                continue
            if outcome == "ok" or crash == "after_commit":
                billed_ids.add(container.admit(_caller(tenant), event).request_id.split(".")[0])
        for tenant in tenants:
            events = usage.assert_invariants(tenant, quota=quota)
            assert sum(e.units for e in events) <= quota
        billed = {e.request_id for t in tenants for e in usage.events(t)}
        assert billed == billed_ids  # served (or served then crashed) requests are billed, each once; no others
    finally:
        usage.drop()


def test_a_cancelled_transaction_leaves_nothing_behind_in_the_emulator(usage):
    # GIVEN an aggregate item and a transaction that updates it and then fails a condition
    key = {"pk": {"S": "TENANT#t-rollback"}, "sk": {"S": "MONTH#2026-12"}}
    usage.ddb.put_item(TableName=usage.table, Item={**key, "consumed": {"N": "5"}})
    update = {
        "TableName": usage.table,
        "Key": key,
        "UpdateExpression": "ADD #c :n",
        "ExpressionAttributeNames": {"#c": "consumed"},
    }
    failing = {
        "TableName": usage.table,
        "Key": {"pk": {"S": "SHARD#s"}, "sk": {"S": "CHECKPOINT"}},
        "UpdateExpression": "SET seq = :s",
        "ConditionExpression": "attribute_exists(seq)",
    }
    # WHEN the transaction is cancelled
    with pytest.raises(usage.ddb.exceptions.TransactionCanceledException):
        usage.ddb.transact_write_items(
            TransactItems=[
                {"Update": {**update, "ExpressionAttributeValues": {":n": {"N": "7"}}}},
                {"Update": {**failing, "ExpressionAttributeValues": {":s": {"S": "1"}}}},
            ]
        )
    # THEN the first update was rolled back and the second item was never created
    assert usage.ddb.get_item(TableName=usage.table, Key=key)["Item"]["consumed"] == {"N": "5"}
    assert "Item" not in usage.ddb.get_item(TableName=usage.table, Key=failing["Key"])


def test_the_same_gateway_request_id_with_another_body_is_billed_as_another_request(usage):
    # GIVEN a billed request (no Idempotency-Key: its id is API Gateway's request id)
    tenant, billing = _tenant(), usage.billing()
    first = _event('{"input": "one"}')
    serve(billing, tenant, 3, first)
    # WHEN an event with the same request id but another body arrives (a replayed or forged event)
    other = {**first, "body": '{"input": "another, longer one"}'}
    serve(billing, tenant, 9, other)
    serve(billing, tenant, 9, other)  # and Lambda retries that one
    # THEN it is billed too, once: never served free
    assert sorted(e.units for e in usage.assert_invariants(tenant)) == [3, 9]
