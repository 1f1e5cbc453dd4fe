"""Lambda entry point for POST /v1/classify: plumbing only."""

from aws_lambda_powertools import Logger, Metrics

from maas.api.classify import create_app
from maas.classify_service import ClassifyService
from maas.constants import METRICS_NAMESPACE, SERVICE_NAME
from maas.settings import ClassifySettings
from maas.wiring import billing_from_settings, lambda_entry

logger = Logger(service=SERVICE_NAME)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)
settings = ClassifySettings.from_env()
service = ClassifyService(settings, logger)  # loads and verifies the classifiers and the embedding model once
api = create_app(service, billing_from_settings(settings, logger, metrics), logger)
lambda_handler = lambda_entry(api, logger, metrics)
