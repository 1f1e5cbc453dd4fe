"""Lambda entry point for POST /v1/rerank: plumbing only."""

from aws_lambda_powertools import Logger, Metrics

from maas.api.rerank import create_app
from maas.observability import billing_from_settings, lambda_entry, make_tracer
from maas.settings.functions import RerankSettings
from maas.settings.names import METRICS_NAMESPACE, SERVICE_NAME
from maas.tasks.embeddings import EmbeddingsService
from maas.tasks.rerank import RerankService

logger = Logger(service=SERVICE_NAME)
tracer = make_tracer(SERVICE_NAME)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)
settings = RerankSettings.from_env()
embeddings = EmbeddingsService(settings, logger, tracer=tracer)  # loads and verifies the model once, at init
service = RerankService(embeddings, settings.max_documents)
api = create_app(service, billing_from_settings(settings, logger, metrics), logger)
lambda_handler = lambda_entry(api, logger, metrics)
