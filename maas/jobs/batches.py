"""OpenAI's Batch API on the jobs engine: a batch is one job (the same id digits: batch_X is job_X).

POST /v1/batches writes the job item with the batch's own attributes (endpoint, input file, metadata, phase) and
copies the input file to the job's input key, jobs/{tenant}/{job}/input.jsonl: that upload starts the S3 worker as
any job's does, and the worker hands a job with an endpoint to maas.jobs.batch_run (validation of the whole file
first, then parts in order, each billed once, continued through SQS). The job's status and cursor are the
engine's; the batch's status is read from them and the batch attributes:

  job awaiting_upload / running, phase validating     -> validating   (cancelling once a cancel is asked)
  running, phase in_progress                          -> in_progress  (cancelling once a cancel is asked)
  running, phase finalizing                           -> finalizing
  completed | failed | cancelled | expired            -> the same
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field

from maas.errors import ApiError, InvalidRequest, NotFound
from maas.jobs import store as j
from maas.jobs.files import MAX_UPLOAD_BYTES, FileStore, file_key
from maas.jobs.store import Job, JobStore
from maas.tenancy.store import Caller

BATCH_ID_RE = re.compile(r"^batch_[a-f0-9]{24}$")
VALIDATING, IN_PROGRESS, FINALIZING = "validating", "in_progress", "finalizing"
CANCELLED, EXPIRED = "cancelled", "expired"
TERMINAL = (j.COMPLETED, j.FAILED, CANCELLED, EXPIRED)
COMPLETION_WINDOW_S = 24 * 3600
# OpenAI's limits for a batch's input file, checked before any line runs.
MAX_BATCH_LINES = 50_000
MAX_BATCH_FILE_BYTES = MAX_UPLOAD_BYTES
MAX_REPORTED_ERRORS = 100  # errors.data lists at most this many problems of a refused file
MAX_METADATA_PAIRS = 16


class Conflict(ApiError):
    status, type, code = 409, "invalid_request_error", "conflict"


def batch_id_of(job_id: str) -> str:
    return "batch_" + job_id.removeprefix("job_")


def job_id_of(batch_id: str) -> str:
    return "job_" + batch_id.removeprefix("batch_")


def _n(value: int) -> dict:
    return {"N": str(int(value))}


@dataclass
class BatchRecord:
    """A batch job's item: the job (cursor, counts, status) and the batch's own attributes."""

    job: Job
    endpoint: str
    input_file_id: str
    completion_window: str = "24h"
    metadata: dict | None = None
    phase: str = VALIDATING
    total: int = 0
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: list[dict] = field(default_factory=list)
    times: dict[str, int] = field(default_factory=dict)  # in_progress_at, cancelling_at, ... (Unix seconds)
    created_ns: int = 0  # orders the batches made in one second (OpenAI lists newest first)

    @classmethod
    def from_item(cls, item: dict) -> BatchRecord:
        def s(name: str) -> str | None:
            return item[name]["S"] if name in item else None

        times = {k: int(v["N"]) for k, v in item.items() if k.endswith("_at") and "N" in v}
        return cls(
            job=Job.from_item(item),
            endpoint=item["endpoint"]["S"],
            input_file_id=s("input_file_id") or "",
            completion_window=s("completion_window") or "24h",
            metadata=json.loads(s("metadata")) if s("metadata") else None,
            phase=s("phase") or VALIDATING,
            total=int(item.get("total", {"N": "0"})["N"]),
            output_file_id=s("output_file_id"),
            error_file_id=s("error_file_id"),
            errors=json.loads(s("errors")) if s("errors") else [],
            times=times,
            created_ns=int(item.get("created_ns", {"N": "0"})["N"]),
        )

    @property
    def id(self) -> str:
        return batch_id_of(self.job.job_id)

    @property
    def cancel_requested(self) -> bool:
        return "cancelling_at" in self.times

    @property
    def status(self) -> str:
        if self.job.status in TERMINAL:
            return self.job.status
        if self.phase == FINALIZING:
            return FINALIZING
        if self.cancel_requested:
            return "cancelling"
        return IN_PROGRESS if self.phase == IN_PROGRESS else VALIDATING

    def body(self) -> dict:
        """The batch as OpenAI's API answers it."""
        job, t = self.job, self.times
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": {"object": "list", "data": self.errors} if self.errors else None,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": job.created,
            **{
                name: t.get(name)
                for name in (
                    "in_progress_at",
                    "expires_at",
                    "finalizing_at",
                    "completed_at",
                    "failed_at",
                    "expired_at",
                    "cancelling_at",
                    "cancelled_at",
                )
            },
            "request_counts": {"total": self.total, "completed": job.succeeded, "failed": job.failed},
            "metadata": self.metadata,
            "model": job.model or None,
            "usage": {
                "input_tokens": job.units,
                "output_tokens": 0,
                "total_tokens": job.units,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens_details": {"reasoning_tokens": 0},
            },
        }


class BatchStore:
    """Batch items in the jobs table (maas.tables.JOBS), beside the jobs they are."""

    def __init__(self, jobs: JobStore):
        self.ddb, self.table = jobs.ddb, jobs.table

    def _key(self, tenant_id: str, job_id: str) -> dict:
        return {"tenant_id": {"S": tenant_id}, "job_id": {"S": job_id}}

    def create(
        self, caller: Caller, job_id: str, endpoint: str, input_file_id: str, metadata: dict | None
    ) -> BatchRecord:
        now_ns = time.time_ns()
        now = now_ns // 1_000_000_000
        item = {
            **self._key(caller.tenant_id, job_id),
            "created_ns": _n(now_ns),
            "status": {"S": j.AWAITING_UPLOAD},
            "model": {"S": ""},
            "input_format": {"S": "jsonl"},
            "encoding_format": {"S": "float"},
            "key_prefix": {"S": caller.key_prefix},
            "created": _n(now),
            "updated": _n(now),
            **{name: _n(0) for name in ("lines", "offset", "parts", "succeeded", "failed", "units", "total")},
            "endpoint": {"S": endpoint},
            "input_file_id": {"S": input_file_id},
            "completion_window": {"S": "24h"},
            "phase": {"S": VALIDATING},
            "expires_at": _n(now + COMPLETION_WINDOW_S),
        }
        if metadata is not None:
            item["metadata"] = {"S": json.dumps(metadata)}
        self.ddb.put_item(TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(job_id)")
        return BatchRecord.from_item(item)

    def get(self, tenant_id: str, job_id: str) -> BatchRecord | None:
        item = self.ddb.get_item(TableName=self.table, Key=self._key(tenant_id, job_id), ConsistentRead=True).get(
            "Item"
        )
        return BatchRecord.from_item(item) if item and "endpoint" in item else None

    def list(self, tenant_id: str) -> list[BatchRecord]:
        """Every batch of the tenant, newest first."""
        items, start = [], None
        while True:
            kwargs = {"ExclusiveStartKey": start} if start else {}
            page = self.ddb.query(
                TableName=self.table,
                KeyConditionExpression="tenant_id = :t",
                FilterExpression="attribute_exists(endpoint)",
                ExpressionAttributeValues={":t": {"S": tenant_id}},
                **kwargs,
            )
            items += page.get("Items", [])
            start = page.get("LastEvaluatedKey")
            if not start:
                break
        batches = [BatchRecord.from_item(i) for i in items]
        return sorted(batches, key=lambda b: (b.job.created, b.created_ns, b.id), reverse=True)

    def _update(self, job: Job, expression: str, values: dict, condition: str, names: dict | None = None) -> bool:
        try:
            self.ddb.update_item(
                TableName=self.table,
                Key=self._key(job.tenant_id, job.job_id),
                UpdateExpression=expression,
                ConditionExpression=condition,
                # only the names the expressions use (DynamoDB refuses unused ones); status is a reserved word
                ExpressionAttributeNames={
                    k: v for k, v in {"#s": "status", **(names or {})}.items() if k in expression or k in condition
                },
                ExpressionAttributeValues=values,
            )
        except self.ddb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def request_cancel(self, job: Job) -> bool:
        """Ask the worker to stop at the next part boundary (once; not after the batch ended)."""
        now = int(time.time())
        return self._update(
            job,
            "SET cancelling_at = :now, updated = :now",
            {":now": _n(now), ":waiting": {"S": j.AWAITING_UPLOAD}, ":running": {"S": j.RUNNING}},
            "(#s = :waiting OR #s = :running) AND attribute_not_exists(cancelling_at)",
        )

    def validated(self, job: Job, total: int, model: str) -> bool:
        """The whole file passed validation: the batch is in progress."""
        now = int(time.time())
        return self._update(
            job,
            "SET phase = :p, in_progress_at = :now, #t = :total, #m = :m, updated = :now",
            {
                ":p": {"S": IN_PROGRESS},
                ":now": _n(now),
                ":total": _n(total),
                ":m": {"S": model},
                ":v": {"S": VALIDATING},
            },
            "phase = :v",
            {"#t": "total", "#m": "model"},
        )

    def finalizing(self, job: Job) -> None:
        now = int(time.time())
        self._update(
            job,
            "SET phase = :p, finalizing_at = :now, updated = :now",
            {":p": {"S": FINALIZING}, ":now": _n(now), ":running": {"S": j.RUNNING}},
            "#s = :running",
        )

    def finish(
        self,
        job: Job,
        status: str,
        output_file_id: str | None = None,
        error_file_id: str | None = None,
        errors: list[dict] | None = None,
    ) -> bool:
        """Move a running batch to its end (once): completed, failed, cancelled or expired, with its files."""
        now = int(time.time())
        expression = f"SET #s = :s, {status}_at = :now, updated = :now"
        values = {":s": {"S": status}, ":now": _n(now), ":running": {"S": j.RUNNING}}
        for name, value in (("output_file_id", output_file_id), ("error_file_id", error_file_id)):
            if value:
                expression += f", {name} = :{name}"
                values[f":{name}"] = {"S": value}
        if errors:
            expression += ", #e = :errors"
            values[":errors"] = {"S": json.dumps(errors[:MAX_REPORTED_ERRORS])}
        return self._update(job, expression, values, "#s = :running", {"#e": "errors"} if errors else None)


class BatchesService:
    """The caller's batches: create (validated up front by the worker), read, list, cancel."""

    def __init__(self, jobs: JobStore, files: FileStore):
        self.jobs, self.store, self.files = jobs, BatchStore(jobs), files

    def create(self, caller: Caller, input_file_id: str, endpoint: str, metadata: dict | None) -> dict:
        if metadata is not None:
            _check_metadata(metadata)
        source = self.files.get(caller.tenant_id, input_file_id)
        if source is None:
            raise NotFound(f"No file '{input_file_id}'.", code="file_not_found", param="input_file_id")
        if source.purpose != "batch":
            raise InvalidRequest(
                f"The file '{input_file_id}' has purpose '{source.purpose}'; a batch reads a file uploaded with "
                "purpose 'batch'.",
                code="invalid_file_purpose",
                param="input_file_id",
            )
        if source.bytes > MAX_BATCH_FILE_BYTES:
            raise InvalidRequest(
                f"The file '{input_file_id}' has {source.bytes} bytes; a batch's input file may have at most "
                f"{MAX_BATCH_FILE_BYTES}.",
                code="file_too_large",
                param="input_file_id",
            )
        record = self.store.create(caller, j.new_job_id(), endpoint, input_file_id, metadata)
        # The copy is the job's upload: its ObjectCreated event starts the worker, as for any job.
        self.files.s3.copy_object(
            Bucket=self.files.bucket,
            Key=j.input_key(caller.tenant_id, record.job.job_id, "jsonl"),
            CopySource={"Bucket": self.files.bucket, "Key": file_key(caller.tenant_id, input_file_id)},
        )
        return record.body()

    def _record(self, caller: Caller, batch_id: str) -> BatchRecord:
        record = self.store.get(caller.tenant_id, job_id_of(batch_id)) if BATCH_ID_RE.match(batch_id) else None
        if record is None:
            raise NotFound(f"No batch '{batch_id}'.", code="batch_not_found")
        return record

    def get(self, caller: Caller, batch_id: str) -> dict:
        return self._record(caller, batch_id).body()

    def list(self, caller: Caller, after: str | None, limit: int) -> dict:
        """OpenAI's cursor pagination: newest first, ``limit`` after the batch ``after``."""
        batches = self.store.list(caller.tenant_id)
        if after:
            ids = [b.id for b in batches]
            if after not in ids:
                raise NotFound(f"No batch '{after}' to list after.", code="batch_not_found", param="after")
            batches = batches[ids.index(after) + 1 :]
        page = batches[:limit]
        return {
            "object": "list",
            "data": [b.body() for b in page],
            "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None,
            "has_more": len(batches) > len(page),
        }

    def cancel(self, caller: Caller, batch_id: str) -> dict:
        record = self._record(caller, batch_id)
        if not self.store.request_cancel(record.job):
            record = self._record(caller, batch_id)
            if record.status not in ("cancelling", CANCELLED):
                raise Conflict(
                    f"The batch '{batch_id}' is {record.status}; only a batch that has not ended can be cancelled.",
                    code="batch_not_cancellable",
                )
            return record.body()
        return self._record(caller, batch_id).body()


def _check_metadata(metadata: dict) -> None:
    if len(metadata) > MAX_METADATA_PAIRS:
        raise InvalidRequest(f"'metadata' has {len(metadata)} pairs; at most 16 are kept.", param="metadata")
    for key, value in metadata.items():
        if len(key) > 64 or len(value) > 512:
            raise InvalidRequest(
                "'metadata' keys may have 64 characters and values 512.", code="invalid_metadata", param="metadata"
            )
