"""Kept until functions/batch_s3 and batch_sqs import worker_from_settings from maas.jobs.worker."""

from maas.jobs.worker import worker_from_settings  # noqa: F401
