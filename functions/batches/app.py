"""Lambda entry point for OpenAI's Files, Uploads and Batch API (/v1/files, /v1/uploads, /v1/batches): plumbing."""

import boto3

from maas.api.batches import BatchesApi
from maas.jobs.batches import BatchesService
from maas.jobs.files import FileStore, UploadStore
from maas.jobs.store import JobStore
from maas.observability import lambda_entry, logger
from maas.settings.functions import JobsSettings

settings = JobsSettings.from_env()
files = FileStore(boto3.client("s3"), settings.job_bucket, settings.url_ttl_s)
service = BatchesService(JobStore(boto3.client("dynamodb"), settings.jobs_table), files)
lambda_handler = lambda_entry(BatchesApi(service, files, UploadStore(files), logger))
