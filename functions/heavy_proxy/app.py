"""Lambda entry point for a SageMaker-served (heavy) model's routes: plumbing only (see maas.api.heavy)."""

from aws_lambda_powertools import Logger, Metrics

from maas.api.heavy import create_app
from maas.heavy.client import HeavyEndpoint
from maas.observability import billing_from_settings, lambda_entry
from maas.settings.functions import HeavyProxySettings
from maas.settings.names import METRICS_NAMESPACE, SERVICE_NAME

logger = Logger(service=SERVICE_NAME)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)
settings = HeavyProxySettings.from_env()  # the endpoint, its catalog model, time bounds, metering
endpoint = HeavyEndpoint(settings, logger=logger)  # one boto3 client per container, made at init
api = create_app(endpoint, billing_from_settings(settings, logger, metrics), logger)
lambda_handler = lambda_entry(api, logger, metrics)
