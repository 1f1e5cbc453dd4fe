"""Lambda entry point for the Open Inference Protocol (KServe v2) routes under /v2: plumbing only."""

from maas.api.v2 import create_app
from maas.metering.charge import Billing
from maas.observability import get_tracer, lambda_entry, logger, metrics
from maas.settings.functions import EmbeddingsSettings
from maas.tasks.embeddings import EmbeddingsService
from maas.tasks.v2 import V2Service

settings = EmbeddingsSettings.from_env()  # MAAS_MAX_INPUTS bounds the rows of one infer request
embeddings = EmbeddingsService(settings, logger, tracer=get_tracer())  # loads and verifies the model once, at init
service = V2Service(embeddings, settings.max_inputs)
api = create_app(service, Billing.from_settings(settings, logger, metrics), logger)
lambda_handler = lambda_entry(api)
