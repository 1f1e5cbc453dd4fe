"""Lambda entry point for the failed-events queue (what the batch workers gave up on): plumbing only."""

from maas.jobs.failures import handler_from_settings
from maas.observability import lambda_entry, logger
from maas.settings.functions import FailedEventsSettings

settings = FailedEventsSettings.from_env()
handler = handler_from_settings(settings, logger)
lambda_handler = lambda_entry(handler.handle_sqs_event)
