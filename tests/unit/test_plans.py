"""Every billable task has a price in every plan, so nothing served is accidentally free."""

from maas.inference.catalog import TASK_FAMILY
from maas.tenancy.plans import default_plans


def test_every_task_family_is_priced_by_every_plan():
    for plan in default_plans().values():
        missing = set(TASK_FAMILY.values()) - set(plan.price_per_million_units_usd)
        assert not missing, f"plan {plan.name} prices no {sorted(missing)}"


def test_plans_are_ordered_by_size():
    plans = default_plans()
    assert plans["free"].monthly_quota < plans["pro"].monthly_quota < plans["enterprise"].monthly_quota
    assert plans["free"].rate_limit < plans["pro"].rate_limit < plans["enterprise"].rate_limit
