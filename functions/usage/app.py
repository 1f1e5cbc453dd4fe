"""Lambda entry point for GET /v1/usage (the caller's own usage): plumbing only."""

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import correlation_paths

from maas.api.usage import create_app
from maas.metering.reports import UsageService
from maas.metering.store import Meter
from maas.settings.functions import UsageSettings
from maas.settings.names import SERVICE_NAME
from maas.tenancy.plans import default_plans, load_plans

logger = Logger(service=SERVICE_NAME)
settings = UsageSettings.from_env()
plans = load_plans(settings.plans_file) if settings.plans_file else default_plans()
app = create_app(UsageService(Meter(boto3.client("dynamodb"), settings.usage_table), plans), logger)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def lambda_handler(event, context):
    return app.resolve(event, context)
