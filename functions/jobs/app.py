"""Lambda entry point for POST /v1/jobs and GET /v1/jobs[/{id}] (the caller's own jobs): plumbing only."""

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import correlation_paths

from maas.api.jobs import create_app
from maas.jobs.service import JobsService
from maas.jobs.store import JobStore
from maas.settings.functions import JobsSettings
from maas.settings.names import SERVICE_NAME

logger = Logger(service=SERVICE_NAME)
settings = JobsSettings.from_env()
service = JobsService(
    JobStore(boto3.client("dynamodb"), settings.jobs_table),
    boto3.client("s3"),
    settings.job_bucket,
    settings.results_prefix,
    settings.url_ttl_s,
)
app = create_app(service, logger)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def lambda_handler(event, context):
    return app.resolve(event, context)
