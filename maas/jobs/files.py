"""The Files API's store: one S3 object per file in the job bucket, under the owner's own prefix.

Keys: files/{tenant}/{file id}. What OpenAI's file object says beyond the size and the key (filename, purpose,
created_at) is the object's user metadata, so a file is one object and nothing else to keep in step. Every
lookup is keyed by the caller's tenant: no caller can name another tenant's file.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, unquote

from maas.settings.names import FILES_PREFIX, UPLOADS_PREFIX

FILE_ID_RE = re.compile(r"^file-[a-f0-9]{24}$")
PURPOSES = ("batch", "batch_output")
# One S3 part of an assembled file: S3 wants at least 5 MiB in every part but the last.
ASSEMBLY_PART_BYTES = 8 * 1024 * 1024


def new_file_id() -> str:
    return f"file-{uuid.uuid4().hex[:24]}"


def file_key(tenant_id: str, file_id: str) -> str:
    return f"{FILES_PREFIX}{tenant_id}/{file_id}"


@dataclass(frozen=True)
class FileRecord:
    id: str
    bytes: int
    created_at: int
    filename: str
    purpose: str

    def body(self) -> dict:
        """The file object as OpenAI's API answers it."""
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }


def _metadata(filename: str, purpose: str, created_at: int) -> dict[str, str]:
    # S3 user metadata travels as HTTP headers: ASCII only, so the filename is percent-encoded.
    return {"filename": quote(filename, safe=""), "purpose": purpose, "created-at": str(created_at)}


class FileStore:
    """Files of one bucket. ``s3`` is a boto3 S3 client."""

    def __init__(self, s3, bucket: str, url_ttl_s: int = 3600):
        self.s3, self.bucket, self.url_ttl_s = s3, bucket, url_ttl_s

    def put(self, tenant_id: str, filename: str, purpose: str, data: bytes, file_id: str | None = None) -> FileRecord:
        """Store ``data`` as a new file (or as ``file_id``, rewriting the same bytes on a retry)."""
        record = FileRecord(file_id or new_file_id(), len(data), int(time.time()), filename, purpose)
        self.s3.put_object(
            Bucket=self.bucket,
            Key=file_key(tenant_id, record.id),
            Body=data,
            ContentType="application/jsonl",
            Metadata=_metadata(filename, purpose, record.created_at),
        )
        return record

    def assemble(
        self, tenant_id: str, file_id: str, filename: str, purpose: str, chunks: Iterable[bytes]
    ) -> FileRecord | None:
        """Store the concatenation of ``chunks`` as ``file_id`` without holding it in memory (an S3 multipart
        upload of ASSEMBLY_PART_BYTES parts); None, and nothing stored, when the chunks hold no bytes."""
        key, created = file_key(tenant_id, file_id), int(time.time())
        buffer, parts, upload_id, size = bytearray(), [], None, 0

        def flush() -> None:
            nonlocal upload_id
            if upload_id is None:
                upload_id = self.s3.create_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    ContentType="application/jsonl",
                    Metadata=_metadata(filename, purpose, created),
                )["UploadId"]
            number = len(parts) + 1
            etag = self.s3.upload_part(
                Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=bytes(buffer)
            )["ETag"]
            parts.append({"ETag": etag, "PartNumber": number})
            buffer.clear()

        try:
            for chunk in chunks:
                buffer += chunk
                size += len(chunk)
                if len(buffer) >= ASSEMBLY_PART_BYTES:
                    flush()
            if upload_id is None:  # small: one put
                return self.put(tenant_id, filename, purpose, bytes(buffer), file_id) if size else None
            if buffer:
                flush()
            self.s3.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except Exception:
            if upload_id is not None:
                self.s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise
        return FileRecord(file_id, size, created, filename, purpose)

    def get(self, tenant_id: str, file_id: str) -> FileRecord | None:
        if not FILE_ID_RE.match(file_id):
            return None
        try:
            head = self.s3.head_object(Bucket=self.bucket, Key=file_key(tenant_id, file_id))
        except self.s3.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return self._record(file_id, head["ContentLength"], head.get("Metadata") or {}, head["LastModified"])

    @staticmethod
    def _record(file_id: str, size: int, meta: dict, modified) -> FileRecord:
        created = int(meta.get("created-at") or modified.timestamp())
        return FileRecord(
            file_id, int(size), created, unquote(meta.get("filename", file_id)), meta.get("purpose", "batch")
        )

    def list(self, tenant_id: str) -> list[FileRecord]:
        """Every file of the tenant, newest first."""
        prefix = f"{FILES_PREFIX}{tenant_id}/"
        found = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                file_id = obj["Key"].removeprefix(prefix)
                if FILE_ID_RE.match(file_id):
                    record = self.get(tenant_id, file_id)  # the metadata is only on the object itself
                    if record is not None:
                        found.append(record)
        return sorted(found, key=lambda r: (r.created_at, r.id), reverse=True)

    def delete(self, tenant_id: str, file_id: str) -> bool:
        if self.get(tenant_id, file_id) is None:
            return False
        self.s3.delete_object(Bucket=self.bucket, Key=file_key(tenant_id, file_id))
        return True

    def read(self, tenant_id: str, file_id: str) -> bytes:
        return self.s3.get_object(Bucket=self.bucket, Key=file_key(tenant_id, file_id))["Body"].read()

    def url(self, tenant_id: str, file_id: str) -> str:
        """A presigned GET URL of the file's content."""
        return self.s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": file_key(tenant_id, file_id)}, ExpiresIn=self.url_ttl_s
        )


# ------------------------------------------------------------------------------------------ the Uploads API

UPLOAD_ID_RE = re.compile(r"^upload_[a-f0-9]{24}$")
PART_ID_RE = re.compile(r"^part_[a-f0-9]{24}$")
UPLOAD_TTL_S = 3600  # OpenAI's: an upload not completed within an hour expires
MAX_UPLOAD_BYTES = 200 * 1024 * 1024  # what a batch may read (maas.jobs.batches.MAX_BATCH_FILE_BYTES)


class UploadStore:
    """OpenAI's Uploads API: a file sent in parts (each one request), then assembled into a file in order.

    Keys: uploads/{tenant}/{upload id}/upload.json (what the upload object says) and .../{part id} per part. The
    parts are read back in the order `complete` names them and written as one file (FileStore.assemble), so no part
    size is forced on the client beyond the one request's limit."""

    def __init__(self, files: FileStore):
        self.files, self.s3, self.bucket = files, files.s3, files.bucket

    def _key(self, tenant_id: str, upload_id: str, name: str = "upload.json") -> str:
        return f"{UPLOADS_PREFIX}{tenant_id}/{upload_id}/{name}"

    def _save(self, tenant_id: str, upload: dict) -> dict:
        self.s3.put_object(
            Bucket=self.bucket,
            Key=self._key(tenant_id, upload["id"]),
            Body=json.dumps(upload).encode(),
            ContentType="application/json",
        )
        return upload

    def create(self, tenant_id: str, filename: str, purpose: str, size: int, mime_type: str) -> dict:
        now = int(time.time())
        upload = {
            "id": f"upload_{uuid.uuid4().hex[:24]}",
            "object": "upload",
            "bytes": size,
            "created_at": now,
            "expires_at": now + UPLOAD_TTL_S,
            "filename": filename,
            "purpose": purpose,
            "status": "pending",
            "file": None,
            "mime_type": mime_type,
        }
        return self._save(tenant_id, upload)

    def get(self, tenant_id: str, upload_id: str) -> dict | None:
        if not UPLOAD_ID_RE.match(upload_id):
            return None
        try:
            raw = self.s3.get_object(Bucket=self.bucket, Key=self._key(tenant_id, upload_id))["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return None
        upload = json.loads(raw)
        if upload["status"] == "pending" and time.time() > upload["expires_at"]:
            upload["status"] = "expired"
        return upload

    def add_part(self, tenant_id: str, upload: dict, data: bytes) -> dict:
        part = {"id": f"part_{uuid.uuid4().hex[:24]}", "object": "upload.part", "created_at": int(time.time())}
        self.s3.put_object(Bucket=self.bucket, Key=self._key(tenant_id, upload["id"], part["id"]), Body=data)
        return {**part, "upload_id": upload["id"]}

    def complete(self, tenant_id: str, upload: dict, part_ids: list[str]) -> tuple[FileRecord | None, str]:
        """Assemble the parts, in ``part_ids``' order, into a new file: (the file, its md5 hex digest)."""
        digest = hashlib.md5(usedforsecurity=False)

        def chunks() -> Iterable[bytes]:
            for part_id in part_ids:
                data = self.s3.get_object(Bucket=self.bucket, Key=self._key(tenant_id, upload["id"], part_id))[
                    "Body"
                ].read()
                digest.update(data)
                yield data

        record = self.files.assemble(tenant_id, new_file_id(), upload["filename"], upload["purpose"], chunks())
        return record, digest.hexdigest()

    def finish(self, tenant_id: str, upload: dict, status: str, file: dict | None = None) -> dict:
        """Mark the upload completed (with its file) or cancelled, and drop its parts."""
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=self._key(tenant_id, upload["id"], ""))
        for obj in listed.get("Contents", []):
            if not obj["Key"].endswith("/upload.json"):
                self.s3.delete_object(Bucket=self.bucket, Key=obj["Key"])
        return self._save(tenant_id, {**upload, "status": status, "file": file})


def upload_body(upload: dict) -> dict:
    """The upload object as OpenAI's API answers it."""
    return {k: v for k, v in upload.items() if k != "mime_type"}
