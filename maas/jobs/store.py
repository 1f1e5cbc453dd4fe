"""Batch jobs: the job record (DynamoDB, maas.tables.JOBS), object keys and their tenant attribution.

Keys (bucket: MAAS_JOB_BUCKET):
  jobs/{tenant}/{job_id}/input.{jsonl|csv}   an upload for a job made with POST /v1/jobs
  jobs/{tenant}/{name}.{jsonl|csv}           a file dropped straight into the tenant's prefix: a job is made
                                             for it, its id derived from the key and the object version
  results/{tenant}/{job_id}/part-00000.jsonl one part per chunk of input lines, then manifest.json

A job item's cursor (lines and bytes of the input done, parts written) only moves forward, by conditional
update from the value the worker read, so two deliveries of the same event can never both advance it.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import unquote_plus

from maas.settings.names import JOBS_PREFIX
from maas.tenancy.store import TENANT_ID_RE

INPUT_FORMATS = ("jsonl", "csv")
AWAITING_UPLOAD, RUNNING, COMPLETED, FAILED = "awaiting_upload", "running", "completed", "failed"
JOB_ID_RE = re.compile(r"^job_[a-f0-9]{24}$")
_JOB_KEY = re.compile(r"^jobs/(?P<tenant>[^/]+)/(?P<job>job_[a-f0-9]{24})/input\.(?P<fmt>jsonl|csv)$")
_DROP_KEY = re.compile(r"^jobs/(?P<tenant>[^/]+)/(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,127})\.(?P<fmt>jsonl|csv)$")


class RejectedKey(Exception):
    """An object key outside any tenant's prefix, with path tricks, or for no active tenant."""


def new_job_id() -> str:
    return f"job_{uuid.uuid4().hex[:24]}"


def input_key(tenant_id: str, job_id: str, input_format: str) -> str:
    return f"{JOBS_PREFIX}{tenant_id}/{job_id}/input.{input_format}"


def part_key(results_prefix: str, tenant_id: str, job_id: str, part: int) -> str:
    return f"{results_prefix}{tenant_id}/{job_id}/part-{part:05d}.jsonl"


def manifest_key(results_prefix: str, tenant_id: str, job_id: str) -> str:
    return f"{results_prefix}{tenant_id}/{job_id}/manifest.json"


@dataclass(frozen=True)
class ObjectRef:
    """One version of an uploaded job file, attributed to a tenant by its key."""

    bucket: str
    key: str
    version: str  # the S3 version id, or the ETag where the bucket is not versioned
    tenant_id: str
    job_id: str
    input_format: str
    dropped: bool  # no job was made for it through the API

    def to_message(self) -> dict:
        return {"bucket": self.bucket, "key": self.key, "version": self.version}


def parse_key(bucket: str, raw_key: str, version: str, url_encoded: bool = True) -> ObjectRef:
    """Attribute an object key to a tenant and a job, refusing anything outside a tenant's prefix.

    S3 event keys are URL-encoded (spaces as '+'); ``url_encoded`` False for keys that are not.
    """
    key = unquote_plus(raw_key) if url_encoded else raw_key
    if (
        not key.startswith(JOBS_PREFIX)
        or ".." in key
        or "//" in key
        or "\\" in key
        or any(ord(ch) < 32 or ord(ch) == 127 for ch in key)
    ):
        raise RejectedKey("key outside a tenant's jobs/ prefix or with path tricks")
    m = _JOB_KEY.match(key)
    if m is not None:
        tenant, job, dropped = m["tenant"], m["job"], False
    else:
        m = _DROP_KEY.match(key)
        if m is None:
            raise RejectedKey("key is not jobs/{tenant}/{job_id}/input.{jsonl|csv} or jobs/{tenant}/{name}.{jsonl|csv}")
        tenant, dropped = m["tenant"], True
        job = "job_" + hashlib.sha256(f"{bucket}\n{key}\n{version}".encode()).hexdigest()[:24]
    if not TENANT_ID_RE.match(tenant):
        raise RejectedKey("the key's tenant segment is not a tenant id")
    return ObjectRef(bucket, key, version, tenant, job, m["fmt"], dropped)


@dataclass
class Job:
    tenant_id: str
    job_id: str
    status: str
    model: str
    input_format: str
    encoding_format: str = "float"
    key_prefix: str = ""
    created: int = 0
    updated: int = 0
    version: str | None = None
    chunk_lines: int | None = None
    lines: int = 0  # input lines done (results written and billed)
    offset: int = 0  # input bytes done
    parts: int = 0
    succeeded: int = 0
    failed: int = 0
    units: int = 0
    csv_header: list[str] = field(default_factory=list)
    error: str | None = None

    @classmethod
    def from_item(cls, item: dict) -> Job:
        def n(name: str) -> int:
            return int(item[name]["N"]) if name in item else 0

        def s(name: str) -> str | None:
            return item[name]["S"] if name in item else None

        return cls(
            tenant_id=item["tenant_id"]["S"],
            job_id=item["job_id"]["S"],
            status=item["status"]["S"],
            model=item["model"]["S"],
            input_format=item["input_format"]["S"],
            encoding_format=s("encoding_format") or "float",
            key_prefix=s("key_prefix") or "",
            created=n("created"),
            updated=n("updated"),
            version=s("version"),
            chunk_lines=n("chunk_lines") or None,
            lines=n("lines"),
            offset=n("offset"),
            parts=n("parts"),
            succeeded=n("succeeded"),
            failed=n("failed"),
            units=n("units"),
            csv_header=[v["S"] for v in item.get("csv_header", {}).get("L", [])],
            error=s("error"),
        )


class JobStore:
    """Job items. ``client`` is a boto3 DynamoDB client."""

    def __init__(self, client, table: str):
        self.ddb = client
        self.table = table

    def _key(self, tenant_id: str, job_id: str) -> dict:
        return {"tenant_id": {"S": tenant_id}, "job_id": {"S": job_id}}

    def create(
        self,
        tenant_id: str,
        job_id: str,
        model: str,
        input_format: str,
        encoding_format: str = "float",
        key_prefix: str = "",
    ) -> Job:
        """A new job awaiting its upload; a job id that exists already is left as it is (returns it)."""
        now = int(time.time())
        item = {
            **self._key(tenant_id, job_id),
            "status": {"S": AWAITING_UPLOAD},
            "model": {"S": model},
            "input_format": {"S": input_format},
            "encoding_format": {"S": encoding_format},
            "key_prefix": {"S": key_prefix},
            "created": {"N": str(now)},
            "updated": {"N": str(now)},
            **{name: {"N": "0"} for name in ("lines", "offset", "parts", "succeeded", "failed", "units")},
        }
        try:
            self.ddb.put_item(TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(job_id)")
        except self.ddb.exceptions.ConditionalCheckFailedException:
            return self.get(tenant_id, job_id)
        return Job.from_item(item)

    def get(self, tenant_id: str, job_id: str) -> Job | None:
        item = self.ddb.get_item(TableName=self.table, Key=self._key(tenant_id, job_id), ConsistentRead=True).get(
            "Item"
        )
        return Job.from_item(item) if item else None

    def list(self, tenant_id: str, limit: int = 100) -> list[Job]:
        page = self.ddb.query(
            TableName=self.table,
            KeyConditionExpression="tenant_id = :t",
            ExpressionAttributeValues={":t": {"S": tenant_id}},
            Limit=limit,
        )
        return sorted((Job.from_item(i) for i in page.get("Items", [])), key=lambda j: (j.created, j.job_id))

    def start(self, job: Job, version: str, chunk_lines: int) -> Job | None:
        """Bind the job to one object version (the first seen) and mark it running. Returns the job as it now
        is, or None when the job is bound to another version (a second upload to a used job id)."""
        if job.version is not None:
            return job if job.version == version else None
        try:
            item = self.ddb.update_item(
                TableName=self.table,
                Key=self._key(job.tenant_id, job.job_id),
                UpdateExpression="SET #v = :v, chunk_lines = :c, #s = :running, updated = :now",
                ConditionExpression="attribute_exists(job_id) AND attribute_not_exists(#v)",
                ExpressionAttributeNames={"#v": "version", "#s": "status"},
                ExpressionAttributeValues={
                    ":v": {"S": version},
                    ":c": {"N": str(chunk_lines)},
                    ":running": {"S": RUNNING},
                    ":now": {"N": str(int(time.time()))},
                },
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except self.ddb.exceptions.ConditionalCheckFailedException:
            current = self.get(job.tenant_id, job.job_id)
            return current if current is not None and current.version == version else None
        return Job.from_item(item)

    def advance(
        self, job: Job, lines: int, offset: int, succeeded: int, failed: int, units: int, csv_header: list[str]
    ) -> bool:
        """Record one more part done, only if nobody advanced the job since ``job`` was read."""
        values = {
            ":lines0": {"N": str(job.lines)},
            ":parts0": {"N": str(job.parts)},
            ":lines": {"N": str(job.lines + lines)},
            ":offset": {"N": str(offset)},
            ":parts": {"N": str(job.parts + 1)},
            ":ok": {"N": str(succeeded)},
            ":bad": {"N": str(failed)},
            ":units": {"N": str(units)},
            ":now": {"N": str(int(time.time()))},
            ":running": {"S": RUNNING},
        }
        expression = (
            "SET #l = :lines, #o = :offset, parts = :parts, updated = :now ADD succeeded :ok, #f :bad, units :units"
        )
        if csv_header and not job.csv_header:
            expression = expression.replace("updated = :now", "updated = :now, csv_header = :h")
            values[":h"] = {"L": [{"S": h} for h in csv_header]}
        try:
            self.ddb.update_item(
                TableName=self.table,
                Key=self._key(job.tenant_id, job.job_id),
                UpdateExpression=expression,
                ConditionExpression="#s = :running AND #l = :lines0 AND parts = :parts0",
                ExpressionAttributeNames={"#l": "lines", "#o": "offset", "#f": "failed", "#s": "status"},
                ExpressionAttributeValues=values,
            )
        except self.ddb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def finish(self, job: Job, status: str, error: str | None = None) -> bool:
        """Move a running job to completed or failed (once)."""
        names = {"#s": "status"}
        values = {":s": {"S": status}, ":running": {"S": RUNNING}, ":now": {"N": str(int(time.time()))}}
        expression = "SET #s = :s, updated = :now"
        if error:
            expression += ", #e = :e"
            names["#e"] = "error"
            values[":e"] = {"S": error[:1000]}
        try:
            self.ddb.update_item(
                TableName=self.table,
                Key=self._key(job.tenant_id, job.job_id),
                UpdateExpression=expression,
                ConditionExpression="#s = :running",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except self.ddb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def fail(self, tenant_id: str, job_id: str, version: str, reason: str) -> bool:
        """Mark a job failed whose worker gave up on ``version`` of its file (a dead-lettered event): only while it
        is awaiting its upload or running, and only if it is bound to that version or to none yet (then it is bound
        to it, so a later upload cannot restart the failed job). False when the job is not in that state."""
        try:
            self.ddb.update_item(
                TableName=self.table,
                Key=self._key(tenant_id, job_id),
                UpdateExpression="SET #s = :failed, #e = :e, updated = :now, #v = if_not_exists(#v, :v)",
                ConditionExpression="(#s = :running OR #s = :awaiting) AND (attribute_not_exists(#v) OR #v = :v)",
                ExpressionAttributeNames={"#s": "status", "#e": "error", "#v": "version"},
                ExpressionAttributeValues={
                    ":failed": {"S": FAILED},
                    ":running": {"S": RUNNING},
                    ":awaiting": {"S": AWAITING_UPLOAD},
                    ":e": {"S": reason[:1000]},
                    ":v": {"S": version},
                    ":now": {"N": str(int(time.time()))},
                },
            )
        except self.ddb.exceptions.ConditionalCheckFailedException:
            return False
        return True
