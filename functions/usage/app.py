"""Lambda entry point for GET /v1/usage (the caller's own usage): plumbing only."""

import boto3

from maas.api.usage import create_app
from maas.metering.charge import plans_from_settings
from maas.metering.reports import UsageService
from maas.metering.store import Meter
from maas.observability import lambda_entry, logger
from maas.settings.functions import UsageSettings

settings = UsageSettings.from_env()
service = UsageService(Meter(boto3.client("dynamodb"), settings.usage_table), plans_from_settings(settings))
api = create_app(service, logger)
lambda_handler = lambda_entry(api.resolve)
