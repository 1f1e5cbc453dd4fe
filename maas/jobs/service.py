"""Batch jobs for their owner: create one (a presigned upload URL under the caller's prefix), read its status.

Every lookup is keyed by the caller's tenant (from the authorizer), so no caller can address another
tenant's job, and every URL handed out points under that tenant's own prefixes.
"""

from __future__ import annotations

import time

from maas.errors import NotFound
from maas.inference.catalog import Catalog, default_catalog
from maas.jobs import store as j
from maas.jobs.store import Job, JobStore
from maas.tenancy.store import Caller


class JobsService:
    def __init__(
        self,
        store: JobStore,
        s3_client,
        bucket: str,
        results_prefix: str,
        url_ttl_s: int,
        stall_after_s: int = 900,
        catalog: Catalog | None = None,
    ):
        self.store, self.s3, self.bucket = store, s3_client, bucket
        self.results_prefix, self.url_ttl_s, self.stall_after_s = results_prefix, url_ttl_s, stall_after_s
        self.catalog = catalog or default_catalog()

    def check_model(self, model: str) -> None:
        """Refuse, before any job exists, a model the batch workers cannot run: batch jobs embed text, so the id
        must name a deployed embeddings model of the catalog. 404 model_not_found in the error shape."""
        entry = self.catalog.resolve(model)
        if entry is None or entry.placeholder:
            raise NotFound(
                f"The model '{model}' does not exist or is not served here; see GET /v1/models.",
                code="model_not_found",
                param="model",
            )
        if not entry.serves("embeddings"):
            raise NotFound(
                f"The model '{model}' is a {entry.task} model; batch jobs embed text with an embeddings model.",
                code="model_not_found",
                param="model",
            )

    def _url(self, method: str, key: str) -> str:
        return self.s3.generate_presigned_url(
            method, Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=self.url_ttl_s
        )

    def create(self, caller: Caller, model: str, input_format: str, encoding_format: str) -> dict:
        self.check_model(model)
        job = self.store.create(
            caller.tenant_id, j.new_job_id(), model, input_format, encoding_format, key_prefix=caller.key_prefix
        )
        key = j.input_key(caller.tenant_id, job.job_id, input_format)
        return {
            **self.describe(job),
            "upload": {"method": "PUT", "url": self._url("put_object", key), "expires_in": self.url_ttl_s},
        }

    def get(self, caller: Caller, job_id: str) -> dict:
        job = self.store.get(caller.tenant_id, job_id) if j.JOB_ID_RE.match(job_id) else None
        if job is None:
            raise NotFound(f"No job '{job_id}'.", code="job_not_found")
        return self.describe(job)

    def list(self, caller: Caller) -> dict:
        return {"object": "list", "data": [self.describe(job, urls=False) for job in self.store.list(caller.tenant_id)]}

    def describe(self, job: Job, urls: bool = True) -> dict:
        body = {
            "id": job.job_id,
            "object": "batch_job",
            "status": job.status,
            "model": job.model,
            "input_format": job.input_format,
            "encoding_format": job.encoding_format,
            "created": job.created,
            "updated": job.updated,
            "progress": {"lines": job.lines, "succeeded": job.succeeded, "failed": job.failed, "parts": job.parts},
            "usage": {"units": job.units},
            "error": job.error,
            # A running job's item changes with every part; none for this long means its worker is not running it
            # (a retry waits, or an event was lost): said here, not guessed by the client.
            "last_progress_at": job.updated,
            "stalled": job.status == j.RUNNING and time.time() - job.updated > self.stall_after_s,
        }
        if urls and job.status == j.COMPLETED:
            parts = [j.part_key(self.results_prefix, job.tenant_id, job.job_id, p) for p in range(job.parts)]
            body["results"] = {
                "manifest_url": self._url("get_object", j.manifest_key(self.results_prefix, job.tenant_id, job.job_id)),
                "part_urls": [self._url("get_object", key) for key in parts],
                "expires_in": self.url_ttl_s,
            }
        return body
