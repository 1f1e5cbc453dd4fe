"""Batch jobs: the job store, S3/SQS sources, record parsing, the worker, the jobs service."""
