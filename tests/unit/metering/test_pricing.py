"""Pricing: exact Decimal money, one half-up rounding to cents, prices by task family."""

from decimal import Decimal

from maas.metering.pricing import amount_usd, family_of, price_per_million
from maas.tenancy.plans import Plan


def _plan(**prices: float) -> Plan:
    return Plan(name="test", rate_limit=10, burst_limit=20, monthly_quota=1_000_000, price_per_million_units_usd=prices)


def test_a_plan_price_is_taken_as_written_not_as_its_binary_float():
    # GIVEN a plan pricing embeddings at 0.02 USD per million units (not exactly representable as a float)
    plan = _plan(**{"text-embedding": 0.02})

    # WHEN its price per million is read for billing
    price = price_per_million(plan, "text-embedding")

    # THEN it is exactly 0.02
    assert price == Decimal("0.02")


def test_a_family_the_plan_does_not_price_costs_zero():
    # GIVEN a plan that prices only embeddings
    plan = _plan(**{"text-embedding": 0.02})

    # WHEN the rerank family is priced
    price = price_per_million(plan, "rerank")

    # THEN it is free rather than an error
    assert price == Decimal("0")


def test_amount_is_exact_then_rounded_once_half_up_to_cents():
    # GIVEN units whose exact amount lies exactly halfway between two cents (250,000 x 0.02 / 10^6 = 0.005)
    units, price = 250_000, Decimal("0.02")

    # WHEN the amount is computed
    amount = amount_usd(units, price)

    # THEN half a cent rounds up, and the result carries cents
    assert amount == Decimal("0.01") and amount.as_tuple().exponent == -2


def test_amount_below_half_a_cent_rounds_down_to_zero():
    # GIVEN 249,999 units at 0.02 USD per million (0.00499998 USD)
    # WHEN the amount is computed
    amount = amount_usd(249_999, Decimal("0.02"))

    # THEN it rounds to zero cents
    assert amount == Decimal("0.00")


def test_large_volumes_are_exact():
    # GIVEN ten billion units at 0.13 USD per million
    # WHEN the amount is computed
    amount = amount_usd(10_000_000_000, Decimal("0.13"))

    # THEN it is exactly 1,300 USD, with no float drift
    assert amount == Decimal("1300.00")


def test_a_task_is_priced_under_its_family():
    # GIVEN the billable tasks
    # WHEN each is mapped to its price family
    # THEN image classification and KServe v2 tensors have their own families, and an unknown task keeps its name
    assert family_of("embeddings") == "text-embedding"
    assert family_of("image-classify") == "image-classification"
    assert family_of("v2-infer") == "tensor-inference"
    assert family_of("speech") == "speech"
