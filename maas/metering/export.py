"""Usage for billing tools: invoice lines (priced by plan and model family) and CloudEvents JSON lines.

Pricing works from the usage events, not from the monthly aggregates: an aggregate row names the model
(``name@version``) but not its task, and the task decides the price family (maas.inference.catalog.TASK_FAMILY). Each
event carries its task, so grouping a month's events by (model, task) prices every unit by the family it
was served under, with no guessing (maas.metering.reports.aggregate_mismatches cross-checks the aggregates).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from maas.metering.pricing import amount_usd, batch_price_per_million, family_of, price_per_million
from maas.metering.store import UsageEvent
from maas.tenancy.plans import Plan

CLOUDEVENT_TYPE = "com.maas.usage.recorded"


@dataclass(frozen=True)
class InvoiceLine:
    """One tenant's usage of one model (served under one task, synchronously or through the Batch API) in one month,
    priced by the tenant's plan."""

    tenant_id: str
    model: str  # name@version
    task: str
    family: str
    units: int
    requests: int
    compute_ms: float
    unit_price_per_million_usd: Decimal
    amount_usd: Decimal
    priced: bool  # False: the plan has no price for this family (billed at 0)
    batch: bool = False  # Batch API usage: its own line, at the plan's batch price

    @property
    def channel(self) -> str:
        """How the units were served: `sync` (the HTTP routes, queued requests, jobs) or `batch` (the Batch API)."""
        return "batch" if self.batch else "sync"


def invoice_lines(tenant_id: str, plan: Plan, events: Iterable[UsageEvent]) -> list[InvoiceLine]:
    """Group a tenant's events by (model, task, batch or not) and price each group; sorted by model."""
    groups: dict[tuple[str, str, bool], list[UsageEvent]] = {}
    for event in events:
        groups.setdefault((event.model_id, event.task, event.batch), []).append(event)
    lines = []
    for (model, task, batch), group in sorted(groups.items()):
        family = family_of(task)
        price = batch_price_per_million(plan, family) if batch else price_per_million(plan, family)
        units = sum(e.units for e in group)
        lines.append(
            InvoiceLine(
                tenant_id=tenant_id,
                model=model,
                task=task,
                family=family,
                units=units,
                requests=len(group),
                compute_ms=round(sum(e.compute_ms for e in group), 3),
                unit_price_per_million_usd=price,
                amount_usd=amount_usd(units, price),
                priced=family in plan.price_per_million_units_usd,
                batch=batch,
            )
        )
    return lines


def cloud_event(event: UsageEvent) -> dict:
    """One usage event as a CloudEvents 1.0 structured-mode JSON object. Only the key's prefix, never a key."""
    return {
        "specversion": "1.0",
        "type": CLOUDEVENT_TYPE,
        "source": f"/maas/{event.tenant_id}",
        "id": event.request_id,
        "time": event.iso_time(),
        "subject": event.tenant_id,
        "datacontenttype": "application/json",
        "data": {
            "tenant_id": event.tenant_id,
            "key_prefix": event.key_prefix,
            "model": event.model,
            "version": event.version,
            "task": event.task,
            "units": event.units,
            "compute_ms": event.compute_ms,
            "request_id": event.request_id,
            "channel": "batch" if event.batch else "sync",
        },
    }
