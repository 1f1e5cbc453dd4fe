"""What reaches the batch worker: S3 ObjectCreated notifications for job files, and SQS messages (a job's
continuation, or one inference request)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from maas.jobs.store import ObjectRef, RejectedKey, parse_key

CONTINUE = "job.continue"


class PoisonMessage(Exception):
    """An SQS message that cannot be processed (malformed, unknown tenant, ...): fails every receive."""


@dataclass(frozen=True)
class Upload:
    """One record of an S3 ObjectCreated notification."""

    bucket: str
    key: str  # URL-encoded, as S3 events send it
    version: str  # the object's version id, or "etag:<ETag>" where the bucket is not versioned

    @property
    def key_sha256(self) -> str:
        """What may be logged of the key: it may hold anything a client chose."""
        return hashlib.sha256(self.key.encode()).hexdigest()[:16]

    def ref(self) -> ObjectRef:
        """The job file this upload is, attributed to its tenant; RejectedKey outside any tenant's prefix."""
        return parse_key(self.bucket, self.key, self.version)


def uploads(event: dict) -> list[Upload]:
    """The job files an S3 ObjectCreated notification announces."""
    found = []
    for record in event.get("Records") or []:
        s3 = record.get("s3") or {}
        obj = s3.get("object") or {}
        version = obj.get("versionId") or f"etag:{obj.get('eTag', '')}"
        found.append(Upload((s3.get("bucket") or {}).get("name", ""), str(obj.get("key", "")), version))
    return found


class EmbeddingRequest(BaseModel):
    """One SQS message: one inference request."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    model: str | None = None
    input: str | list[str] = Field(min_length=1)
    request_id: str | None = Field(None, pattern=r"^[A-Za-z0-9._:-]{1,128}$")
    result_name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    encoding_format: str = Field("float", pattern=r"^(float|base64)$")


def continuation(ref: ObjectRef) -> str:
    """The SQS message body that asks a worker to go on with a job at its cursor."""
    return json.dumps({"maas": CONTINUE, **ref.to_message()})


def parse_message(body: str) -> ObjectRef | EmbeddingRequest:
    """One SQS message: a job's continuation (the job file to go on with) or one inference request;
    PoisonMessage if it is neither."""
    try:
        payload = json.loads(body)
    except ValueError:
        raise PoisonMessage("the message body is not JSON") from None
    if isinstance(payload, dict) and payload.get("maas") == CONTINUE:
        try:  # a continuation's key is sent as is, not URL-encoded
            return parse_key(payload["bucket"], payload["key"], payload["version"], url_encoded=False)
        except (KeyError, TypeError, RejectedKey) as exc:
            raise PoisonMessage(f"invalid continuation: {exc}") from None
    try:
        return EmbeddingRequest.model_validate(payload)
    except ValidationError as exc:
        raise PoisonMessage(f"invalid request: {exc.errors()[0]['msg']}") from None
