"""Invoice lines from usage events, and usage events as CloudEvents."""

import dataclasses
from decimal import Decimal

from maas.metering.export import CLOUDEVENT_TYPE, cloud_event, invoice_lines
from maas.metering.reports import aggregate_mismatches
from maas.metering.store import UsageEvent
from maas.tenancy.plans import Plan

PLAN = Plan(
    name="test",
    rate_limit=10,
    burst_limit=20,
    monthly_quota=10**9,
    price_per_million_units_usd={"text-embedding": 0.02, "text-classification": 0.5},
)


def _event(i: int, model: str, version: str, task: str, units: int) -> UsageEvent:
    return UsageEvent(
        request_id=f"r-{i}",
        tenant_id="acme",
        key_prefix="maas_AbCdEfGh",
        model=model,
        version=version,
        task=task,
        units=units,
        compute_ms=1.25,
        time=1_767_225_600.0 + i,
    )


def test_one_model_served_under_two_tasks_is_two_lines_priced_by_each_task():
    # GIVEN the embedding model billed for embeddings twice and, through zero-shot, for classification once
    events = [
        _event(1, "minilm", "1", "embeddings", 600_000),
        _event(2, "minilm", "1", "embeddings", 400_000),
        _event(3, "minilm", "1", "classify", 2_000_000),
    ]

    # WHEN the invoice lines are made
    lines = invoice_lines("acme", PLAN, events)

    # THEN each (model, task) is one line, priced by its task's family
    by_task = {line.task: line for line in lines}
    assert set(by_task) == {"embeddings", "classify"}
    embeddings = by_task["embeddings"]
    assert (embeddings.units, embeddings.requests, embeddings.compute_ms) == (1_000_000, 2, 2.5)
    assert (embeddings.family, embeddings.amount_usd, embeddings.priced) == ("text-embedding", Decimal("0.02"), True)
    classify = by_task["classify"]
    assert (classify.family, classify.amount_usd) == ("text-classification", Decimal("1.00"))


def test_a_family_the_plan_does_not_price_is_a_zero_line_marked_unpriced():
    # GIVEN reranking usage under a plan without a rerank price
    events = [_event(1, "reranker", "2", "rerank", 5_000)]

    # WHEN the invoice lines are made
    [line] = invoice_lines("acme", PLAN, events)

    # THEN the line is billed at 0 and says it is unpriced
    assert (line.model, line.amount_usd, line.priced) == ("reranker@2", Decimal("0.00"), False)


def test_lines_are_sorted_by_model_and_rounded_per_line():
    # GIVEN two versions of one model, each used for half a cent's worth
    events = [_event(1, "minilm", "2", "embeddings", 250_000), _event(2, "minilm", "1", "embeddings", 250_000)]

    # WHEN the invoice lines are made
    lines = invoice_lines("acme", PLAN, events)

    # THEN they come sorted by model id, and each line rounds on its own (as an invoice shows them)
    assert [line.model for line in lines] == ["minilm@1", "minilm@2"]
    assert [line.amount_usd for line in lines] == [Decimal("0.01"), Decimal("0.01")]


def test_aggregates_that_disagree_with_the_events_are_reported_per_model():
    # GIVEN invoice lines from events and aggregate rows, one of which counts a request the events lack
    lines = invoice_lines(
        "acme", PLAN, [_event(1, "minilm", "1", "embeddings", 10), _event(2, "big", "1", "rerank", 5)]
    )
    aggregates = [{"model": "minilm@1", "units": 10, "requests": 1}, {"model": "big@1", "units": 5, "requests": 2}]

    # WHEN they are compared
    mismatches = aggregate_mismatches(lines, aggregates)

    # THEN only the model that disagrees is reported, with both counts
    assert mismatches == ["big@1: events say (5, 1) (units, requests), the aggregate says (5, 2)"]


def test_a_usage_event_is_a_cloudevent_with_the_key_prefix_only():
    # GIVEN a usage event
    event = _event(7, "minilm", "1", "embeddings", 42)

    # WHEN it is exported
    ce = cloud_event(event)

    # THEN it is a CloudEvents 1.0 object identified by the request id, in UTC, carrying no secret
    assert (ce["specversion"], ce["type"], ce["id"]) == ("1.0", CLOUDEVENT_TYPE, "r-7")
    assert (ce["source"], ce["subject"]) == ("/maas/acme", "acme")
    assert ce["time"] == "2026-01-01T00:00:07.000Z"
    assert ce["data"]["key_prefix"] == "maas_AbCdEfGh" and ce["data"]["units"] == 42


def test_batch_usage_is_its_own_line_at_the_plans_batch_price():
    # GIVEN the same model billed synchronously and through the Batch API, under a plan with a 50% batch discount
    plan = PLAN.model_copy(update={"batch_discount": 0.5})
    events = [_event(1, "minilm", "1", "embeddings", 1_000_000), _event(2, "minilm", "1", "embeddings", 3_000_000)]
    events[1] = dataclasses.replace(events[1], batch=True)

    # WHEN the invoice lines are made
    sync, batch = invoice_lines("acme", plan, events)

    # THEN the batch units are a separate line at half the price, and the CloudEvent says which channel it was
    assert (sync.channel, sync.units, sync.unit_price_per_million_usd, sync.amount_usd) == (
        "sync",
        1_000_000,
        Decimal("0.02"),
        Decimal("0.02"),
    )
    assert (batch.channel, batch.units, batch.unit_price_per_million_usd, batch.amount_usd) == (
        "batch",
        3_000_000,
        Decimal("0.010"),
        Decimal("0.03"),
    )
    assert cloud_event(events[1])["data"]["channel"] == "batch"
    assert UsageEvent.from_item(events[1].item()).batch and not UsageEvent.from_item(events[0].item()).batch
