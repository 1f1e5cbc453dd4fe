"""Lambda entry point for POST /v1/images/classify: plumbing only."""

from aws_lambda_powertools import Logger, Metrics

from maas.api.images import create_app
from maas.observability import billing_from_settings, lambda_entry
from maas.settings.functions import ImageClassifySettings
from maas.settings.names import METRICS_NAMESPACE, SERVICE_NAME
from maas.tasks.images import ImageClassifyService

logger = Logger(service=SERVICE_NAME)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)
settings = ImageClassifySettings.from_env()
service = ImageClassifyService(settings, logger)  # loads and verifies the image model once, at init
api = create_app(service, billing_from_settings(settings, logger, metrics), logger)
lambda_handler = lambda_entry(api, logger, metrics)
