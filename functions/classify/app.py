"""Lambda entry point for POST /v1/classify: plumbing only."""

from maas.api.classify import create_app
from maas.metering.charge import Billing
from maas.observability import lambda_entry, logger, metrics
from maas.settings.functions import ClassifySettings
from maas.tasks.classify import ClassifyService

settings = ClassifySettings.from_env()
service = ClassifyService(settings, logger)  # loads and verifies the classifiers and the embedding model once
api = create_app(service, Billing.from_settings(settings, logger, metrics), logger)
lambda_handler = lambda_entry(api)
