"""Lambda entry point for POST /v1/embeddings and GET /v1/models: plumbing only."""

from maas.api.embeddings import create_app
from maas.heavy.client import remote_models
from maas.metering.charge import Billing
from maas.observability import get_tracer, lambda_entry, logger, metrics
from maas.settings.functions import EmbeddingsSettings
from maas.tasks.embeddings import EmbeddingsService

settings = EmbeddingsSettings.from_env()
service = EmbeddingsService(settings, logger, tracer=get_tracer())  # loads and verifies the model once, at init
remote = remote_models(logger=logger)  # SageMaker-served models whose requests this function forwards
api = create_app(service, Billing.from_settings(settings, logger, metrics), logger, remote)
lambda_handler = lambda_entry(api)
