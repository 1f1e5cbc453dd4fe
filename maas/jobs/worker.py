"""Batch processing: job files from S3 in chunks with continuation, and inference requests from SQS.

Exactly once, without an idempotency table: every billable unit of work has a deterministic request id,
  S3 job part  batch-sha256(bucket, key, object version, part number)
  SQS request  sqs-sha256(tenant, the message's request_id or its message id)
so a redelivered event, a retried chunk or a re-received message re-uses the id and Meter.record bills it
once. Each part's results go to a deterministic key (results/{tenant}/{job}/part-00000.jsonl), so a retry
rewrites the same bytes; the job's cursor moves by conditional update (maas.jobs.store.JobStore.advance), so two
deliveries of one event cannot both count a part. A finished job (same object version) is skipped.

Continuation: a worker processes parts while its invocation has time for another (and at most
MAAS_MAX_CHUNKS_PER_INVOCATION, when set), then sends {"maas": "job.continue", bucket, key, version} to the
continuation queue (the requests queue); the SQS worker picks the job up at its cursor.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from maas.errors import NotFound
from maas.inference.catalog import resolve_served
from maas.inference.embedder import TextEmbedder, encode_vectors, sized
from maas.inference.package import Manifest
from maas.jobs import store as j
from maas.jobs.records import Record, iter_lines, parse_csv, parse_csv_header, parse_jsonl, record_of, strip_eol
from maas.jobs.sources import PoisonMessage, continuation, parse_message, uploads
from maas.jobs.store import Job, JobStore, ObjectRef, RejectedKey
from maas.metering.charge import Billing
from maas.settings.functions import BatchSettings
from maas.tenancy.store import ACTIVE, Caller, TenantStore

RESERVE_MS = 10_000  # time left for writing, billing and sending the continuation after the last part


@dataclass
class ChunkResult:
    lines: list[str]  # JSON result lines, in input order
    units: int
    succeeded: int
    failed: int
    compute_ms: float


def embed_records(embedder: TextEmbedder, records: list[Record], encoding_format: str) -> ChunkResult:
    """Embed the good records in length-bucketed batches; one JSON result line per record, in order."""
    good = [r for r in records if r.error is None]
    started = time.perf_counter()
    vectors, counts = np.empty((0, embedder.dimensions), np.float32), []
    if good:
        result = embedder.embed([r.text for r in good])
        vectors, counts = result.vectors, result.token_counts
    compute_ms = (time.perf_counter() - started) * 1000
    encoded = encode_vectors(vectors, encoding_format)
    out, k = [], 0
    for r in records:
        head = {"line": r.line} if r.custom_id is None else {"line": r.line, "custom_id": r.custom_id}
        if r.error is None:
            out.append(json.dumps({**head, "embedding": encoded[k], "tokens": int(counts[k])}, separators=(",", ":")))
            k += 1
        else:
            error = {"message": r.error, "type": "invalid_request_error", "code": "invalid_line"}
            out.append(json.dumps({**head, "error": error}, separators=(",", ":"), ensure_ascii=False))
    return ChunkResult(out, int(sum(counts)), len(good), len(records) - len(good), compute_ms)


def request_id(*parts: str, prefix: str) -> str:
    return f"{prefix}-" + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:40]


# ---------------------------------------------------------------------------------------------- the worker


@dataclass
class JobOutcome:
    job_id: str
    tenant_id: str
    status: str
    parts_done: int = 0  # parts done in this invocation
    continued: bool = False
    note: str | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class BatchWorker:
    """Shared by functions/batch_s3 and functions/batch_sqs; every collaborator is passed in."""

    embedder: TextEmbedder
    manifest: Manifest
    billing: Billing
    jobs: JobStore
    tenants: TenantStore
    s3: object  # boto3 S3 client
    results_prefix: str = "results/"
    chunk_lines: int = 5000
    max_chunks: int = 0
    sqs: object | None = None  # boto3 SQS client, for continuations and the DLQ
    continuation_queue_url: str | None = None
    dlq_url: str | None = None
    max_receive_count: int = 3
    job_bucket: str | None = None
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger(__name__))
    continue_locally: Callable[[ObjectRef], None] | None = None  # where no continuation queue is configured
    # SageMaker-served models (catalog name -> maas.heavy.client.HeavyEndpoint): their jobs and requests are embedded
    # by the model's endpoint, in slices (maas.heavy.client.RemoteEmbedder), and billed like the local model's.
    remote: dict = field(default_factory=dict)
    # The other packages MAAS_MODEL_SOURCE lists (the embedding tiers, older versions): (embedder, manifest).
    others: list = field(default_factory=list)
    # Batch API endpoints other than /v1/embeddings: endpoint -> a factory of its answerer (maas.jobs.batch_run),
    # injected by the function (the task services live above this layer); built once, on the first such batch.
    answerers: dict = field(default_factory=dict)
    built_answerers: dict = field(default_factory=dict)

    def serves(self, model_id: str) -> bool:
        return self.engine(model_id) is not None

    def engine(self, model_id: str | None) -> tuple[object, object] | None:
        """(embedder, what billing records) for ``model_id``: the local package, a remote model, or None."""
        if model_id is None:
            return self.embedder, self.manifest
        try:
            resolve_served(model_id, self.manifest)
            return self.embedder, self.manifest
        except NotFound:
            pass
        for embedder, manifest in self.others:
            try:
                resolve_served(model_id, manifest)
                return embedder, manifest
            except NotFound:
                continue
        if not self.remote:
            return None
        from maas.heavy.client import BilledModel, RemoteEmbedder
        from maas.inference.catalog import default_catalog

        entry = default_catalog().resolve(model_id)
        endpoint = self.remote.get(entry.name) if entry is not None and entry.runtime == "sagemaker" else None
        if endpoint is None:
            return None
        return RemoteEmbedder(endpoint), BilledModel(entry.name, entry.version, "embeddings")

    def _active_caller(self, tenant_id: str, key_prefix: str) -> Caller:
        tenant = self.tenants.get_tenant(tenant_id, consistent=True)
        if tenant is None or tenant.status != ACTIVE:
            raise RejectedKey("no active tenant for the key's tenant prefix")
        return Caller(tenant.tenant_id, tenant.plan, key_prefix)

    # ------------------------------------------------------------------ S3 job files

    def handle_s3_event(self, event: dict, context) -> dict:
        """An S3 ObjectCreated notification: each record's job file, in parts, within this invocation's time."""
        outcomes, rejected = [], 0
        for upload in uploads(event):
            try:
                outcomes.append(self.run_job(upload.ref(), context).as_dict())
            except RejectedKey as exc:
                rejected += 1
                self.logger.warning("job file rejected", extra={"reason": str(exc), "key_sha256": upload.key_sha256})
        return {"statusCode": 200, "jobs": outcomes, "rejected": rejected}

    def run_job(self, ref: ObjectRef, context=None) -> JobOutcome:
        """Process the job's remaining parts from its cursor; continue elsewhere when time runs short."""
        job = self.jobs.get(ref.tenant_id, ref.job_id)
        if job is None and not ref.dropped:
            raise RejectedKey("upload for a job that does not exist")
        caller = self._active_caller(ref.tenant_id, job.key_prefix if job else "s3")
        if job is None:
            job = self.jobs.create(ref.tenant_id, ref.job_id, self.manifest.name, ref.input_format, key_prefix="s3")
        if job.input_format != ref.input_format:
            raise RejectedKey(f"the job expects a .{job.input_format} file")
        if job.version == ref.version and job.status in (j.COMPLETED, j.FAILED):
            self.logger.info("duplicate event for a finished job: nothing to do", extra={"job_id": job.job_id})
            return JobOutcome(job.job_id, job.tenant_id, job.status, note="duplicate")
        started = self.jobs.start(job, ref.version, self.chunk_lines)
        if started is None:
            raise RejectedKey("the job is bound to another version of its file")
        job = started
        if job.status != j.RUNNING:
            return JobOutcome(job.job_id, job.tenant_id, job.status, note="duplicate")
        if job.endpoint:  # a batch made by POST /v1/batches: OpenAI's request lines, validated first
            from maas.jobs.batch_run import run_batch

            return run_batch(self, ref, job, caller, context)
        engine = self.engine(job.model)
        if engine is None:
            self.jobs.finish(job, j.FAILED, f"model_not_found: the model '{job.model}' is not served here")
            return JobOutcome(job.job_id, job.tenant_id, j.FAILED)
        done, last_ms = 0, 0.0
        while True:
            t0 = time.perf_counter()
            try:
                finished, job = self._one_part(ref, job, caller, engine)
            except Concurrent:
                return JobOutcome(job.job_id, job.tenant_id, j.RUNNING, done, note="advanced elsewhere")
            except JobFailed as exc:
                self.jobs.finish(job, j.FAILED, str(exc))
                self.logger.warning("job failed", extra={"job_id": job.job_id, "reason": str(exc)})
                return JobOutcome(job.job_id, job.tenant_id, j.FAILED, done)
            done += 1
            last_ms = (time.perf_counter() - t0) * 1000
            if finished and job.lines == 0:  # an empty file, or a CSV header alone: nothing to answer
                self.jobs.finish(job, j.FAILED, "empty_input: the file has no input lines")
                return JobOutcome(job.job_id, job.tenant_id, j.FAILED, done)
            if finished:
                self._write_manifest(ref, job, engine[1].name)
                self.jobs.finish(job, j.COMPLETED)
                self.logger.info(
                    "job completed",
                    extra={"job_id": job.job_id, "lines": job.lines, "failed": job.failed, "units": job.units},
                )
                return JobOutcome(job.job_id, job.tenant_id, j.COMPLETED, done)
            out_of_parts = self.max_chunks and done >= self.max_chunks
            remaining = context.get_remaining_time_in_millis() if context is not None else None
            if out_of_parts or (remaining is not None and remaining < 2 * last_ms + RESERVE_MS):
                self._continue(ref)
                return JobOutcome(job.job_id, job.tenant_id, j.RUNNING, done, continued=True)

    def _continue(self, ref: ObjectRef) -> None:
        if self.sqs is not None and self.continuation_queue_url:
            self.sqs.send_message(QueueUrl=self.continuation_queue_url, MessageBody=continuation(ref))
        elif self.continue_locally is not None:
            self.continue_locally(ref)
        else:
            raise RuntimeError("the job needs another invocation but no continuation queue is configured")

    def _get(self, ref: ObjectRef, offset: int):
        kwargs = {"Bucket": ref.bucket, "Key": ref.key, "Range": f"bytes={offset}-"}
        if ref.version.startswith("etag:"):  # the bucket is not versioned: pin the object by its ETag
            kwargs["IfMatch"] = f'"{ref.version.removeprefix("etag:")}"'
        else:
            kwargs["VersionId"] = ref.version
        return self.s3.get_object(**kwargs)

    def _one_part(self, ref: ObjectRef, job: Job, caller: Caller, engine) -> tuple[bool, Job]:
        """Read, embed, bill, write and count the part at the job's cursor. Returns (job finished, job)."""
        chunk_lines = job.chunk_lines or self.chunk_lines
        header = list(job.csv_header)
        try:
            response = self._get(ref, job.offset)
        except self.s3.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "InvalidRange":  # the cursor is at the end: an empty file, or a last part already done
                return True, job
            if code in ("NoSuchKey", "NoSuchVersion", "PreconditionFailed", "412"):
                raise JobFailed(f"input_unavailable: the job's file version is gone ({code})") from None
            raise
        size = int(response["ContentLength"])
        body = response["Body"]
        consumed, records, line = 0, [], job.lines + (1 if job.input_format == "csv" else 0)
        need_header = job.input_format == "csv" and not header
        try:
            for raw in iter_lines(body, chunk_lines + (1 if need_header else 0)):
                consumed += len(raw)
                if need_header:
                    need_header = False
                    try:
                        header = parse_csv_header(strip_eol(raw))
                    except (ValueError, UnicodeDecodeError) as exc:
                        raise JobFailed(f"invalid_file: {exc}") from None
                    continue
                line += 1
                text = strip_eol(raw)
                records.append(parse_csv(text, line, header) if job.input_format == "csv" else parse_jsonl(text, line))
        finally:
            body.close()
        finished = job.offset + consumed >= job.offset + size
        if records:
            embedder, billed = engine
            result = embed_records(embedder, records, job.encoding_format)
            if result.units:
                rid = request_id(ref.bucket, ref.key, ref.version, str(job.parts), prefix="batch")
                try:
                    self.billing.charge(caller, rid, billed, result.units, result.compute_ms, None)
                except Exception as exc:
                    if getattr(exc, "status", None) == 429:
                        raise JobFailed(f"quota_exceeded: {exc}") from None
                    raise
            body_bytes = ("\n".join(result.lines) + "\n").encode("utf-8")
            self.s3.put_object(
                Bucket=ref.bucket,
                Key=j.part_key(self.results_prefix, job.tenant_id, job.job_id, job.parts),
                Body=body_bytes,
                ContentType="application/x-ndjson",
            )
            ok, bad, units = result.succeeded, result.failed, result.units
        else:
            ok = bad = units = 0
        if records:
            if not self.jobs.advance(job, len(records), job.offset + consumed, ok, bad, units, header):
                raise Concurrent()
            job = Job(
                **{
                    **job.__dict__,
                    "lines": job.lines + len(records),
                    "offset": job.offset + consumed,
                    "parts": job.parts + 1,
                    "succeeded": job.succeeded + ok,
                    "failed": job.failed + bad,
                    "units": job.units + units,
                    "csv_header": header,
                }
            )
        return finished, job

    def _write_manifest(self, ref: ObjectRef, job: Job, model: str) -> None:
        manifest = {
            "object": "batch_job.results",
            "job_id": job.job_id,
            "input": {"key": ref.key, "version": ref.version, "format": job.input_format},
            "model": model,
            "lines": job.lines,
            "succeeded": job.succeeded,
            "failed": job.failed,
            "units": job.units,
            "parts": [j.part_key(self.results_prefix, job.tenant_id, job.job_id, p) for p in range(job.parts)],
        }
        self.s3.put_object(
            Bucket=ref.bucket,
            Key=j.manifest_key(self.results_prefix, job.tenant_id, job.job_id),
            Body=json.dumps(manifest, indent=1).encode(),
            ContentType="application/json",
        )

    # ------------------------------------------------------------------ SQS messages

    def handle_message(self, body: str, message_id: str) -> dict:
        """One SQS message: a job continuation or one inference request. Raises on failure."""
        request = parse_message(body)
        if isinstance(request, ObjectRef):
            try:
                return self.run_job(request, self._context).as_dict()
            except RejectedKey as exc:
                raise PoisonMessage(f"invalid continuation: {exc}") from None
        engine = self.engine(request.model)
        if engine is None:
            raise PoisonMessage(f"unknown model '{request.model}'")
        embedder, billed = engine
        if not self.job_bucket:
            raise RuntimeError("MAAS_JOB_BUCKET is not set: nowhere to write request results")
        try:
            caller = self._active_caller(request.tenant_id, "sqs")
        except RejectedKey:
            raise PoisonMessage("no active tenant for the request") from None
        texts = [request.input] if isinstance(request.input, str) else request.input
        records = [record_of(t, i) for i, t in enumerate(texts)]
        bad = next((r for r in records if r.error), None)
        if bad is not None:
            raise PoisonMessage(f"input[{bad.line}]: {bad.error}")
        started = time.perf_counter()
        result = embedder.embed(texts)
        compute_ms = (time.perf_counter() - started) * 1000
        units = int(sum(result.token_counts))
        rid = request_id(request.tenant_id, request.request_id or message_id, prefix="sqs")
        self.billing.charge(caller, rid, billed, units, compute_ms, None)
        name = request.result_name or request.request_id or message_id
        key = f"{self.results_prefix}{request.tenant_id}/requests/{name}.json"
        data = encode_vectors(result.vectors, request.encoding_format)
        response = {
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(data)],
            "model": billed.name,
            "usage": {"prompt_tokens": units, "total_tokens": units},
            "request_id": rid,
        }
        self.s3.put_object(
            Bucket=self.job_bucket, Key=key, Body=json.dumps(response).encode(), ContentType="application/json"
        )
        return {"result_key": key, "units": units}

    _context = None

    def handle_sqs_event(self, event: dict, context) -> dict:
        """A batch of SQS messages with Powertools' batch processor: only failed messages come back. On a
        message's last receive (the queue's maxReceiveCount) its failure is forwarded to the DLQ with the error."""
        from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

        self._context = context

        def record_handler(record) -> dict:
            try:
                return self.handle_message(record.body, record.message_id)
            except Exception as exc:
                receives = int(record.attributes.approximate_receive_count or 1)
                error = f"{type(exc).__name__}: {exc}"[:1000]
                self.logger.warning(
                    "message failed",
                    extra={"message_id": record.message_id, "receive": receives, "error": error},
                )
                if self.dlq_url and self.sqs is not None and receives >= self.max_receive_count:
                    self.sqs.send_message(
                        QueueUrl=self.dlq_url,
                        MessageBody=record.body,
                        MessageAttributes={
                            "error": {"DataType": "String", "StringValue": error},
                            "source_message_id": {"DataType": "String", "StringValue": record.message_id},
                            "receive_count": {"DataType": "Number", "StringValue": str(receives)},
                        },
                    )
                    return {"dead_lettered": record.message_id}
                raise

        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False, logger=self.logger)
        try:
            response = process_partial_response(event, record_handler, processor, context)
        finally:
            self._context = None
        failures = response.get("batchItemFailures", [])
        # statusCode is for `maas invoke` and logs; the event source mapping reads only batchItemFailures.
        return {"statusCode": 207 if failures else 200, "batchItemFailures": failures}


class Concurrent(Exception):
    """Another invocation advanced the job's cursor first: this one stops (its part is identical)."""


class JobFailed(Exception):
    """The job cannot go on (bad file, quota exceeded, file gone)."""


def worker_from_settings(
    settings: BatchSettings, logger: logging.Logger, metrics=None, answerers: dict | None = None
) -> BatchWorker:
    """Load and verify the model once, and connect the worker to its tables, bucket and queues. ``answerers``:
    the Batch API endpoints the function answers besides /v1/embeddings (endpoint -> a factory of the answerer)."""
    import boto3

    from maas.heavy.client import remote_models
    from maas.inference.loader import resolve_package

    s3 = boto3.client("s3")
    ddb = boto3.client("dynamodb")
    loaded = []
    for source in [x.strip() for x in settings.model_source.split(",") if x.strip()]:
        folder, manifest = resolve_package(source, settings.model_cache_dir, s3)
        loaded.append((TextEmbedder(folder, manifest, **sized(settings)), manifest))
    (embedder, manifest), others = loaded[0], loaded[1:]
    needs_sqs = settings.continuation_queue_url or settings.dlq_url
    return BatchWorker(
        embedder=embedder,
        manifest=manifest,
        billing=Billing.from_settings(settings, logger, metrics),
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
        others=others,
        answerers=dict(answerers or {}),
    )
