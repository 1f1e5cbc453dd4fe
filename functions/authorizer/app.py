"""Lambda REQUEST authorizer: resolves the API key to tenant, plan and usage-plan identifier. Plumbing only."""

import boto3

from maas.observability import lambda_entry, logger
from maas.settings.functions import AuthorizerSettings
from maas.tenancy.authorizer import Authorizer
from maas.tenancy.store import TenantStore

settings = AuthorizerSettings.from_env()
store = TenantStore(boto3.client("dynamodb"), settings.tenants_table, settings.api_keys_table)
lambda_handler = lambda_entry(Authorizer(store, logger))
