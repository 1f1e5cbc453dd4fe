"""Lambda entry point for job files uploaded under jobs/{tenant}/ (S3 ObjectCreated): plumbing only."""

from aws_lambda_powertools import Logger, Metrics

from maas.jobs.wiring import worker_from_settings
from maas.settings.functions import BatchSettings
from maas.settings.names import METRICS_NAMESPACE, SERVICE_NAME

logger = Logger(service=SERVICE_NAME)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)
worker = worker_from_settings(BatchSettings.from_env(), logger, metrics)  # loads and verifies the model once


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event, context):
    return worker.handle_s3_event(event, context)
