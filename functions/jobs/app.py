"""Lambda entry point for POST /v1/jobs and GET /v1/jobs[/{id}] (the caller's own jobs): plumbing only."""

import boto3

from maas.api.jobs import create_app
from maas.jobs.service import JobsService
from maas.jobs.store import JobStore
from maas.observability import lambda_entry, logger
from maas.settings.functions import JobsSettings

settings = JobsSettings.from_env()
store = JobStore(boto3.client("dynamodb"), settings.jobs_table)
service = JobsService(
    store,
    boto3.client("s3"),
    settings.job_bucket,
    settings.results_prefix,
    settings.url_ttl_s,
    stall_after_s=settings.stall_after_s,
)
api = create_app(service, logger)
lambda_handler = lambda_entry(api.resolve)
