"""Lambda entry point for POST /v1/classify: plumbing only."""

from aws_lambda_powertools import Logger, Metrics

from maas.api.classify import create_app
from maas.observability import billing_from_settings, lambda_entry
from maas.settings.functions import ClassifySettings
from maas.settings.names import METRICS_NAMESPACE, SERVICE_NAME
from maas.tasks.classify import ClassifyService

logger = Logger(service=SERVICE_NAME)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)
settings = ClassifySettings.from_env()
service = ClassifyService(settings, logger)  # loads and verifies the classifiers and the embedding model once
api = create_app(service, billing_from_settings(settings, logger, metrics), logger)
lambda_handler = lambda_entry(api, logger, metrics)
