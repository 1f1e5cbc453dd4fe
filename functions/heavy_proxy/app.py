"""Lambda entry point for a SageMaker-served (heavy) model's routes: plumbing only (see maas.api.heavy)."""

from maas.api.heavy import create_app
from maas.heavy.client import HeavyEndpoint
from maas.metering.charge import Billing
from maas.observability import lambda_entry, logger, metrics
from maas.settings.functions import HeavyProxySettings

settings = HeavyProxySettings.from_env()  # the endpoint, its catalog model, time bounds, metering
endpoint = HeavyEndpoint(settings, logger=logger)  # one boto3 client per container, made at init
api = create_app(endpoint, Billing.from_settings(settings, logger, metrics), logger)
lambda_handler = lambda_entry(api)
