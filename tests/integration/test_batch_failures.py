"""Batch jobs never stay stuck: a worker that fails on every try (the S3 worker's retries, then its on-failure
destination), a continuation redriven after its last receive, or one the SQS worker forwards with its error, ends
the job failed with the reason (functions/failed_events, maas.jobs.failures); a job with no progress reads
stalled; an unknown model is refused when the job is created. On the emulator, with the real handlers."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from maas.inference.embedder import TextEmbedder
from maas.jobs import store as j
from maas.jobs.store import JobStore
from maas.jobs.worker import BatchWorker
from maas.metering.charge import Billing
from maas.metering.store import Meter
from maas.settings.names import ENV_DEAD_LETTERS_URL, ENV_JOB_BUCKET, ENV_JOB_STALL_AFTER_S
from maas.tables import API_KEYS, JOBS, TENANTS, USAGE, create_table_kwargs
from maas.tenancy.plans import default_plans
from maas.tenancy.store import TenantStore
from maas.tools.local.batch import QueueDriver, event_for_object, invoke_async
from maas.tools.local.emulator import aws_env, table_env
from maas.tools.local.functions import LambdaContext, load_handler
from tests.client import Client, assert_error

RECEIVES = 3


class CrashingEmbedder:
    """The real embedder, except that every call dies the way a worker crashes (here: onnxruntime out of memory)."""

    def __init__(self, real: TextEmbedder):
        self.real = real
        self.dimensions = real.dimensions
        self.calls = 0

    def embed(self, texts):
        self.calls += 1
        raise MemoryError("onnxruntime: failed to allocate 1073741824 bytes")


@pytest.fixture
def env(aws):
    """The stack's batch queues: requests (redriven to failed events), failed events (redriven to dead letters),
    dead letters; a versioned job bucket, a fresh usage table, an active tenant; the failed_events handler."""
    ddb, s3, sqs = aws.client("dynamodb"), aws.client("s3"), aws.client("sqs")
    suffix = uuid.uuid4().hex[:8]
    bucket = f"jobs-{suffix}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    dead = sqs.create_queue(QueueName=f"dead-{suffix}")["QueueUrl"]

    def redriven_to(target: str, receives: int) -> dict:
        arn = sqs.get_queue_attributes(QueueUrl=target, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return {"RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": str(receives)})}

    # As infra/batch.py: a redriven message keeps its receive count, so the failed-events queue allows more.
    failed = sqs.create_queue(QueueName=f"failed-{suffix}", Attributes=redriven_to(dead, 2 * RECEIVES))["QueueUrl"]
    requests = sqs.create_queue(QueueName=f"requests-{suffix}", Attributes=redriven_to(failed, RECEIVES))["QueueUrl"]
    usage = f"usage-{suffix}"
    ddb.create_table(**create_table_kwargs(USAGE, name=usage))
    tenants = TenantStore(ddb, TENANTS.local_name, API_KEYS.local_name)
    tenant = tenants.create_tenant("Failing Co", "pro")
    fenv = {**aws_env(aws.url), **table_env(), USAGE.env_var: usage, ENV_JOB_BUCKET: bucket, ENV_DEAD_LETTERS_URL: dead}
    yield {
        "ddb": ddb,
        "s3": s3,
        "sqs": sqs,
        "bucket": bucket,
        "requests": requests,
        "failed": failed,
        "dead": dead,
        "tenant": tenant,
        "tenants": tenants,
        "meter": Meter(ddb, usage),
        "jobs": JobStore(ddb, JOBS.local_name),
        "failed_events": QueueDriver(sqs, failed, load_handler("failed_events", fenv), function_name="failed_events"),
        "fenv": fenv,
    }
    ddb.delete_table(TableName=usage)


def _worker(env, embedder, **kwargs) -> BatchWorker:
    return BatchWorker(
        embedder=embedder,
        manifest=embedder.real.manifest if isinstance(embedder, CrashingEmbedder) else embedder.manifest,
        billing=Billing(env["meter"], default_plans()),
        jobs=env["jobs"],
        tenants=env["tenants"],
        s3=env["s3"],
        sqs=env["sqs"],
        continuation_queue_url=env["requests"],
        max_receive_count=RECEIVES,
        job_bucket=env["bucket"],
        **kwargs,
    )


def _upload(env, lines: int) -> tuple[str, dict]:
    """A job made as POST /v1/jobs makes it, its file uploaded: (job id, the S3 event)."""
    job_id = j.new_job_id()
    tenant = env["tenant"].tenant_id
    env["jobs"].create(tenant, job_id, "all-minilm-l6-v2", "jsonl", "float", key_prefix="maas_test0000")
    key = j.input_key(tenant, job_id, "jsonl")
    body = "".join(json.dumps(f"text {i}") + "\n" for i in range(lines)).encode()
    env["s3"].put_object(Bucket=env["bucket"], Key=key, Body=body)
    return job_id, event_for_object(env["s3"], env["bucket"], key)


def _parked(env) -> list[dict]:
    return (
        env["sqs"]
        .receive_message(QueueUrl=env["dead"], MaxNumberOfMessages=10, MessageAttributeNames=["All"])
        .get("Messages", [])
    )


def _billed(env) -> list:
    return env["meter"].events(env["tenant"].tenant_id, 0, 4e9)


def test_a_crashing_s3_worker_ends_the_job_failed_with_the_reason(env, embedder):
    # GIVEN a job whose worker dies on every try (the S3 worker's handler, invoked as S3 invokes it: asynchronously,
    # retried twice, then its destination record sent to the failed-events queue)
    job_id, event = _upload(env, 5)
    crashing = CrashingEmbedder(embedder)
    worker = _worker(env, crashing)

    def dead_letter(record: dict) -> None:
        env["sqs"].send_message(QueueUrl=env["failed"], MessageBody=json.dumps(record))

    assert invoke_async(worker.handle_s3_event, event, dead_letter) is None
    assert crashing.calls == 3
    assert env["jobs"].get(env["tenant"].tenant_id, job_id).status == j.RUNNING  # what the issue saw: forever

    # WHEN the failed-events handler gets the destination record
    delivered, failures = env["failed_events"].poll()

    # THEN the job is failed, with the worker's error, nothing was billed, and the event is parked with the reason
    assert (delivered, failures) == (1, [])
    job = env["jobs"].get(env["tenant"].tenant_id, job_id)
    assert job.status == j.FAILED
    assert job.error.startswith("worker_failed: the job's worker gave up after 3 tries")
    assert "MemoryError: onnxruntime: failed to allocate" in job.error
    assert _billed(env) == []
    [parked] = _parked(env)
    assert json.loads(parked["Body"])["requestPayload"] == event
    assert parked["MessageAttributes"]["error"]["StringValue"] == job.error
    # A late retry of the same event finds the job finished: it neither restarts nor bills.
    out = _worker(env, embedder).handle_s3_event(event, LambdaContext(timeout_s=900))
    assert out["jobs"][0]["note"] == "duplicate" and _billed(env) == []


def test_a_continuation_redriven_after_timeouts_ends_the_job_failed(env, embedder):
    # GIVEN a job that ran one part, then continued through the requests queue
    job_id, event = _upload(env, 9)
    first = _worker(env, embedder, chunk_lines=3, max_chunks=1).handle_s3_event(event, LambdaContext(timeout_s=900))
    assert first["jobs"][0]["continued"]
    billed = _billed(env)
    assert len(billed) == 1

    # WHEN every receive of the continuation dies without an answer (as a Lambda timeout does: the worker never
    # reports), the queue's redrive moves it to the failed-events queue after its last receive
    def timed_out(event, context):
        raise TimeoutError("Task timed out after 120.00 seconds")

    driver = QueueDriver(env["sqs"], env["requests"], timed_out)
    assert [driver.poll()[0] for _ in range(RECEIVES + 1)] == [1, 1, 1, 0]
    assert env["failed_events"].poll() == (1, [])

    # THEN the job is failed with the reason, the part done before stays counted and billed once
    job = env["jobs"].get(env["tenant"].tenant_id, job_id)
    assert job.status == j.FAILED and (job.lines, job.parts) == (3, 1)
    assert job.error == (
        "worker_failed: the job's continuation failed on every receive "
        "(the worker timed out or crashed before it answered)"
    )
    assert len(_billed(env)) == 1
    [parked] = _parked(env)
    assert json.loads(parked["Body"])["maas"] == "job.continue"


def test_a_continuation_the_sqs_worker_forwards_carries_its_error_to_the_job(env, embedder):
    # GIVEN a running job whose continuation fails in the SQS worker on every receive; the worker forwards it, with
    # the error, to the failed-events queue on its last receive (its MAAS_DLQ_URL)
    job_id, event = _upload(env, 6)
    _worker(env, embedder, chunk_lines=2, max_chunks=1).handle_s3_event(event, LambdaContext(timeout_s=900))
    crashing = _worker(env, CrashingEmbedder(embedder), dlq_url=env["failed"])
    driver = QueueDriver(env["sqs"], env["requests"], crashing.handle_sqs_event)

    # WHEN it is received as often as the queue allows, then handled
    assert [driver.poll()[0] for _ in range(RECEIVES + 1)] == [1, 1, 1, 0]
    assert env["failed_events"].poll() == (1, [])

    # THEN the job says which error failed it and after how many receives
    job = env["jobs"].get(env["tenant"].tenant_id, job_id)
    assert job.status == j.FAILED
    assert job.error.startswith(f"worker_failed: the job's continuation failed on {RECEIVES} receives (MemoryError")
    [parked] = _parked(env)
    assert parked["MessageAttributes"]["receive_count"]["StringValue"] == str(RECEIVES)


def test_a_failed_event_for_a_finished_job_or_an_inference_request_changes_no_job(env, embedder):
    # GIVEN a completed job, and failed events that name it or no job at all
    job_id, event = _upload(env, 2)
    _worker(env, embedder).handle_s3_event(event, LambdaContext(timeout_s=900))
    record = {"requestContext": {"approximateInvokeCount": 3}, "requestPayload": event, "responsePayload": {}}
    for body in (record, {"tenant_id": env["tenant"].tenant_id, "input": "a request"}, "not json at all"):
        env["sqs"].send_message(QueueUrl=env["failed"], MessageBody=json.dumps(body))

    # WHEN they are handled
    delivered, failures = env["failed_events"].poll()

    # THEN the finished job stays completed and every event is parked
    assert (delivered, failures) == (3, [])
    job = env["jobs"].get(env["tenant"].tenant_id, job_id)
    assert (job.status, job.error) == (j.COMPLETED, None)
    assert len(_parked(env)) == 3


def _jobs_api(env, **extra) -> Client:
    """The jobs function (functions/jobs) on the emulator, called as the test's tenant."""
    tenant = env["tenant"].tenant_id
    auth = {"principalId": tenant, "tenant_id": tenant, "plan": "pro", "key_prefix": "maas_abcd1234"}
    return Client(load_handler("jobs", {**env["fenv"], **extra}), authorizer=auth)


def test_a_job_with_no_progress_for_the_bound_reads_stalled(env, embedder):
    # GIVEN a running job (one part done, its continuation never delivered) and a completed one
    jobs = _jobs_api(env, **{ENV_JOB_STALL_AFTER_S: "60"})
    running_id, event = _upload(env, 4)
    _worker(env, embedder, chunk_lines=2, max_chunks=1).handle_s3_event(event, LambdaContext(timeout_s=900))
    done_id, done_event = _upload(env, 1)
    _worker(env, embedder).handle_s3_event(done_event, LambdaContext(timeout_s=900))
    fresh = jobs.get(f"/v1/jobs/{running_id}", resource="/v1/jobs/{job_id}").json
    assert fresh["status"] == "running" and fresh["stalled"] is False
    assert abs(fresh["last_progress_at"] - time.time()) < 60

    # WHEN no progress is recorded for longer than MAAS_JOB_STALL_AFTER_S (the items' clocks set back 61 s)
    for job_id in (running_id, done_id):
        env["ddb"].update_item(
            TableName=JOBS.local_name,
            Key={"tenant_id": {"S": env["tenant"].tenant_id}, "job_id": {"S": job_id}},
            UpdateExpression="SET updated = updated - :d",
            ExpressionAttributeValues={":d": {"N": "61"}},
        )

    # THEN the running job reads stalled, with when it last moved; a finished job never does
    resp = jobs.get(f"/v1/jobs/{running_id}", resource="/v1/jobs/{job_id}")
    stalled = resp.json
    assert resp.status == 200 and stalled["stalled"] is True and stalled["status"] == "running"
    assert stalled["last_progress_at"] == fresh["last_progress_at"] - 61
    assert stalled["progress"]["lines"] == 2
    done = jobs.get(f"/v1/jobs/{done_id}", resource="/v1/jobs/{job_id}").json
    assert done["status"] == "completed" and done["stalled"] is False
    listed = jobs.get("/v1/jobs").json
    assert {(d["id"], d["stalled"]) for d in listed["data"]} == {(running_id, True), (done_id, False)}


@pytest.mark.parametrize(
    ("model", "says"),
    [
        ("no-such-model", "does not exist"),
        ("all-minilm-l6-v2@7", "does not exist"),
        ("ticket-intents", "is a classify model"),
        ("digits-cnn", "is a image-classify model"),
    ],
)
def test_an_unknown_model_is_refused_when_the_job_is_created(env, model, says):
    # GIVEN the jobs API
    jobs = _jobs_api(env)

    # WHEN a job is asked for a model the batch workers cannot run
    resp = jobs.post("/v1/jobs", json={"model": model, "input_format": "jsonl"})

    # THEN 404 in the error shape, before any job exists, and nothing billed
    assert_error(resp, 404, "model_not_found")
    assert resp.json["error"]["param"] == "model"
    assert says in resp.json["error"]["message"] and model in resp.json["error"]["message"]
    assert jobs.get("/v1/jobs").json == {"object": "list", "data": []}
    assert _billed(env) == []


def test_a_served_model_by_its_alias_or_version_makes_a_job(env):
    jobs = _jobs_api(env)
    for model in ("sentence-transformers/all-minilm-l6-v2", "all-minilm-l6-v2@1", "all-minilm-l6-v2-fp32"):
        resp = jobs.post("/v1/jobs", json={"model": model})
        assert resp.status == 201 and resp.json["status"] == "awaiting_upload" and resp.json["model"] == model


def test_a_job_failed_before_it_started_is_bound_to_that_file_and_cannot_restart(env, embedder):
    # GIVEN a job whose first event failed before the worker bound it (still awaiting its upload)
    job_id, event = _upload(env, 2)
    record = {
        "requestContext": {"approximateInvokeCount": 3},
        "requestPayload": event,
        "responsePayload": {"errorType": "ClientError", "errorMessage": "ProvisionedThroughputExceededException"},
    }
    env["sqs"].send_message(QueueUrl=env["failed"], MessageBody=json.dumps(record))

    # WHEN the failure is handled, then a new file is uploaded to the same job
    assert env["failed_events"].poll() == (1, [])
    key = j.input_key(env["tenant"].tenant_id, job_id, "jsonl")
    env["s3"].put_object(Bucket=env["bucket"], Key=key, Body=b'"another file"\n')
    out = _worker(env, embedder).handle_s3_event(event_for_object(env["s3"], env["bucket"], key), LambdaContext())

    # THEN the job stays failed with its reason, bound to the failed file's version; the new upload is rejected
    job = env["jobs"].get(env["tenant"].tenant_id, job_id)
    assert job.status == j.FAILED and "ProvisionedThroughputExceededException" in job.error
    assert job.version == event["Records"][0]["s3"]["object"]["versionId"]
    assert out["rejected"] == 1 and _billed(env) == []
