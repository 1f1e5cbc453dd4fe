"""Build the batch worker from its settings (called once, at init, by functions/batch_s3 and batch_sqs)."""

from __future__ import annotations

import logging

from maas.jobs.worker import BatchWorker
from maas.observability import billing_from_settings
from maas.settings.functions import BatchSettings


def worker_from_settings(settings: BatchSettings, logger: logging.Logger, metrics=None) -> BatchWorker:
    """Load and verify the model once, and connect the worker to its tables, bucket and queues."""
    import boto3

    from maas.heavy.client import remote_models
    from maas.inference.embedder import TextEmbedder, sized
    from maas.inference.loader import resolve_package
    from maas.jobs.store import JobStore
    from maas.tenancy.store import TenantStore

    s3 = boto3.client("s3")
    ddb = boto3.client("dynamodb")
    folder, manifest = resolve_package(settings.model_source, settings.model_cache_dir, s3)
    embedder = TextEmbedder(folder, manifest, **sized(settings))
    needs_sqs = settings.continuation_queue_url or settings.dlq_url
    return BatchWorker(
        embedder=embedder,
        manifest=manifest,
        billing=billing_from_settings(settings, logger, metrics),
        jobs=JobStore(ddb, settings.jobs_table),
        tenants=TenantStore(ddb, settings.tenants_table, keys_table="-"),
        s3=s3,
        results_prefix=settings.results_prefix,
        chunk_lines=settings.chunk_lines,
        max_chunks=settings.max_chunks,
        sqs=boto3.client("sqs") if needs_sqs else None,
        continuation_queue_url=settings.continuation_queue_url,
        dlq_url=settings.dlq_url,
        max_receive_count=settings.max_receive_count,
        job_bucket=settings.job_bucket,
        logger=logger,
        remote=remote_models(logger=logger),  # MAAS_HEAVY_MODELS: jobs for heavy models go to their endpoints
    )
