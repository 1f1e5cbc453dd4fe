"""The price of units under a plan.

Money is Decimal throughout: a line's amount is units x price per million / 10^6, computed exactly from
the integer units and the plan's price (taken through its shortest decimal repr, so 0.02 is 0.02), then
rounded once to cents, half-up. A tenant's total is the sum of its rounded lines, as on an invoice.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from maas.inference.catalog import TASK_FAMILY
from maas.tenancy.plans import Plan

CENTS = Decimal("0.01")
MILLION = Decimal(1_000_000)


def family_of(task: str) -> str:
    """The price family of a task; a task with no family is priced under its own name (a plan prices it 0)."""
    return TASK_FAMILY.get(task, task)


def price_per_million(plan: Plan, family: str) -> Decimal:
    """The plan's price per million units of ``family``, exactly as written (0 where the plan has none)."""
    return Decimal(str(plan.price(family)))


def batch_price_per_million(plan: Plan, family: str) -> Decimal:
    """The Batch API's price per million units of ``family``: the plan's price less its batch discount, exact."""
    return price_per_million(plan, family) * (1 - Decimal(str(plan.batch_discount)))


def amount_usd(units: int, price_per_million_usd: Decimal) -> Decimal:
    """Exact units x price / 10^6, rounded once to cents, half-up."""
    return (Decimal(units) * price_per_million_usd / MILLION).quantize(CENTS, rounding=ROUND_HALF_UP)
