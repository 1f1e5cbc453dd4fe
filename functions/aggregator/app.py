"""Lambda entry point for the usage table's stream (usage events and failures -> aggregates): plumbing only."""

import boto3

from maas.metering.aggregator import Aggregator
from maas.metering.store import Meter
from maas.observability import lambda_entry, logger
from maas.settings.functions import AggregatorSettings

settings = AggregatorSettings.from_env()
aggregator = Aggregator(Meter(boto3.client("dynamodb"), settings.usage_table), logger)
lambda_handler = lambda_entry(aggregator)
