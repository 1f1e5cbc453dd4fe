"""Build a function's collaborators from its settings (called once, at init, by functions/*/app.py)."""

from __future__ import annotations

import logging

from maas.billing import Billing
from maas.plans import default_plans, load_plans


def billing_from_settings(settings, logger: logging.Logger, metrics=None) -> Billing:
    """Metering against the usage table the settings name; a plans file override if given."""
    plans = load_plans(settings.plans_file) if settings.plans_file else default_plans()
    if settings.metering == "off":
        logger.warning("metering is OFF: requests are neither authenticated against quotas nor billed")
        return Billing(None, plans, logger, metrics)
    import boto3  # only functions that meter import boto3

    from maas.metering import Meter

    return Billing(Meter(boto3.client("dynamodb"), settings.usage_table), plans, logger, metrics)
