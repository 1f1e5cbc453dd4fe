"""Lambda entry point for POST /v1/rerank: plumbing only."""

from maas.api.rerank import create_app
from maas.metering.charge import Billing
from maas.observability import get_tracer, lambda_entry, logger, metrics
from maas.settings.functions import RerankSettings
from maas.tasks.embeddings import EmbeddingsService
from maas.tasks.rerank import RerankService

settings = RerankSettings.from_env()
embeddings = EmbeddingsService(settings, logger, tracer=get_tracer())  # loads and verifies the model once, at init
service = RerankService(embeddings, settings.max_documents)
api = create_app(service, Billing.from_settings(settings, logger, metrics), logger)
lambda_handler = lambda_entry(api)
