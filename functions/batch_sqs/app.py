"""Lambda entry point for the requests queue (inference requests, job continuations): plumbing only."""

from maas.jobs.worker import worker_from_settings
from maas.observability import lambda_entry, logger, metrics
from maas.settings.functions import BatchSettings

settings = BatchSettings.from_env()
worker = worker_from_settings(settings, logger, metrics)  # loads and verifies the model once
lambda_handler = lambda_entry(worker.handle_sqs_event)
