"""Lambda entry point for POST /v1/images/classify: plumbing only."""

from maas.api.images import create_app
from maas.metering.charge import Billing
from maas.observability import lambda_entry, logger, metrics
from maas.settings.functions import ImageClassifySettings
from maas.tasks.images import ImageClassifyService

settings = ImageClassifySettings.from_env()
service = ImageClassifyService(settings, logger)  # loads and verifies the image model once, at init
api = create_app(service, Billing.from_settings(settings, logger, metrics), logger)
lambda_handler = lambda_entry(api)
