"""Lambda entry point for job files uploaded under jobs/{tenant}/ (S3 ObjectCreated): plumbing only."""

from maas.api.batch_tasks import task_answerers
from maas.jobs.worker import worker_from_settings
from maas.observability import lambda_entry, logger, metrics
from maas.settings.functions import BatchSettings

settings = BatchSettings.from_env()
# loads and verifies the embedding packages once; the classify and rerank services on their first batch
worker = worker_from_settings(settings, logger, metrics, task_answerers(logger))
lambda_handler = lambda_entry(worker.handle_s3_event)
