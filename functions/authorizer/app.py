"""Lambda REQUEST authorizer: resolves the API key to tenant, plan and usage-plan identifier. Plumbing only."""

import boto3
from aws_lambda_powertools import Logger

from maas.settings.functions import AuthorizerSettings
from maas.settings.names import SERVICE_NAME
from maas.tenancy.authorizer import Authorizer
from maas.tenancy.store import TenantStore

logger = Logger(service=SERVICE_NAME)
settings = AuthorizerSettings.from_env()
authorizer = Authorizer(TenantStore(boto3.client("dynamodb"), settings.tenants_table, settings.api_keys_table), logger)


@logger.inject_lambda_context
def lambda_handler(event, context):
    return authorizer(event)
