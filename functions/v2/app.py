"""Lambda entry point for the Open Inference Protocol (KServe v2) routes under /v2: plumbing only."""

from aws_lambda_powertools import Logger, Metrics

from maas.api.v2 import create_app
from maas.observability import billing_from_settings, lambda_entry, make_tracer
from maas.settings.functions import EmbeddingsSettings
from maas.settings.names import METRICS_NAMESPACE, SERVICE_NAME
from maas.tasks.embeddings import EmbeddingsService
from maas.tasks.v2 import V2Service

logger = Logger(service=SERVICE_NAME)
tracer = make_tracer(SERVICE_NAME)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)
settings = EmbeddingsSettings.from_env()  # MAAS_MAX_INPUTS bounds the rows of one infer request
embeddings = EmbeddingsService(settings, logger, tracer=tracer)  # loads and verifies the model once, at init
service = V2Service(embeddings, settings.max_inputs)
api = create_app(service, billing_from_settings(settings, logger, metrics), logger)
lambda_handler = lambda_entry(api, logger, metrics)
