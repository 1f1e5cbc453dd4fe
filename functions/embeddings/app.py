"""Lambda entry point for POST /v1/embeddings and GET /v1/models: plumbing only."""

from aws_lambda_powertools import Logger, Metrics

from maas.api.embeddings import create_app
from maas.heavy.client import remote_models
from maas.observability import billing_from_settings, lambda_entry, make_tracer
from maas.settings.functions import EmbeddingsSettings
from maas.settings.names import METRICS_NAMESPACE, SERVICE_NAME
from maas.tasks.embeddings import EmbeddingsService

logger = Logger(service=SERVICE_NAME)
tracer = make_tracer(SERVICE_NAME)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)
settings = EmbeddingsSettings.from_env()
service = EmbeddingsService(settings, logger, tracer=tracer)  # loads and verifies the model once, at init
remote = remote_models(logger=logger)  # SageMaker-served models whose requests this function forwards
api = create_app(service, billing_from_settings(settings, logger, metrics), logger, remote)
lambda_handler = lambda_entry(api, logger, metrics)
