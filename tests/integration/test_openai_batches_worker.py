"""A Batch API batch on the jobs engine, without a server: continued part by part, every part billed once under
redelivered events and stale continuations, the output rewritten identically."""

from __future__ import annotations

import json
import uuid

import pytest

from maas.jobs import store as j
from maas.jobs.batch_run import BATCH_PART_LINES
from maas.jobs.batches import BatchesService, job_id_of
from maas.jobs.files import FileStore
from maas.jobs.store import JobStore
from maas.jobs.worker import BatchWorker
from maas.metering.charge import Billing
from maas.metering.store import Meter
from maas.tables import API_KEYS, JOBS, TENANTS, USAGE, create_table_kwargs
from maas.tenancy.plans import default_plans
from maas.tenancy.store import Caller, TenantStore
from maas.tools.local.batch import event_for_object
from maas.tools.local.functions import LambdaContext


@pytest.fixture
def env(aws, embedder):
    ddb, s3 = aws.client("dynamodb"), aws.client("s3")
    bucket = f"jobs-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    usage = f"usage-{uuid.uuid4().hex[:8]}"
    ddb.create_table(**create_table_kwargs(USAGE, name=usage))
    tenants = TenantStore(ddb, TENANTS.local_name, API_KEYS.local_name)
    tenant = tenants.create_tenant("Batch API Co", "pro")
    meter, jobs, files = Meter(ddb, usage), JobStore(ddb, JOBS.local_name), FileStore(s3, bucket)
    continued = []
    worker = BatchWorker(
        embedder=embedder,
        manifest=embedder.manifest,
        billing=Billing(meter, default_plans()),
        jobs=jobs,
        tenants=tenants,
        s3=s3,
        max_chunks=1,  # one part per invocation: every part after the first arrives as a continuation
        continue_locally=continued.append,
    )
    caller = Caller(tenant.tenant_id, "pro", "maas_test0000")
    yield {
        "s3": s3,
        "bucket": bucket,
        "meter": meter,
        "worker": worker,
        "continued": continued,
        "caller": caller,
        "service": BatchesService(jobs, files),
        "files": files,
    }
    ddb.delete_table(TableName=usage)


def billed(env) -> list:
    return env["meter"].events(env["caller"].tenant_id, 0, 4e9)


def test_a_batch_continued_part_by_part_bills_each_part_once_under_redelivery(env):
    # GIVEN a batch of 2.5 parts, made as POST /v1/batches makes it
    lines = [
        {"custom_id": f"c{i}", "method": "POST", "url": "/v1/embeddings", "body": {"input": f"text number {i}"}}
        for i in range(BATCH_PART_LINES * 5 // 2)
    ]
    source = env["files"].put(
        env["caller"].tenant_id, "in.jsonl", "batch", "".join(json.dumps(x) + "\n" for x in lines).encode()
    )
    batch = env["service"].create(env["caller"], source.id, "/v1/embeddings", None)
    job_id = job_id_of(batch["id"])
    key = j.input_key(env["caller"].tenant_id, job_id, "jsonl")
    event = event_for_object(env["s3"], env["bucket"], key)
    worker, context = env["worker"], LambdaContext(timeout_s=900)

    # WHEN the S3 event runs one part, each continuation the next, and then every delivery comes again
    worker.handle_s3_event(event, context)
    while env["continued"]:
        ref = env["continued"].pop(0)
        worker.run_job(ref, context)
        stale = ref
    done = env["service"].get(env["caller"], batch["id"])
    first_bill = billed(env)
    output = env["files"].read(env["caller"].tenant_id, done["output_file_id"])
    worker.handle_s3_event(event, context)
    worker.run_job(stale, context)

    # THEN the batch completed in three parts, each billed once, and nothing changed on redelivery
    assert done["status"] == "completed" and done["request_counts"] == {"total": 250, "completed": 250, "failed": 0}
    assert len(first_bill) == 3 and all(e.batch for e in first_bill)
    assert sum(e.units for e in first_bill) == done["usage"]["input_tokens"]
    assert billed(env) == first_bill and not env["continued"]
    assert env["service"].get(env["caller"], batch["id"]) == done
    got = [json.loads(x) for x in output.splitlines()]
    assert [x["custom_id"] for x in got] == [f"c{i}" for i in range(250)]  # parts in order
    assert env["files"].read(env["caller"].tenant_id, done["output_file_id"]) == output
