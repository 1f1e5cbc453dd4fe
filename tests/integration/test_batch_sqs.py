"""SQS requests on the emulator: partial batch failures, the DLQ after N receives, metering once per message,
and the real batch_sqs / batch_s3 handlers driven the way their event sources drive them."""

from __future__ import annotations

import json
import uuid

import pytest

from maas.jobs.store import JobStore
from maas.jobs.worker import BatchWorker
from maas.metering.charge import Billing
from maas.metering.store import Meter
from maas.settings.names import (
    ENV_CHUNK_LINES,
    ENV_CONTINUATION_QUEUE_URL,
    ENV_DLQ_URL,
    ENV_JOB_BUCKET,
    ENV_MAX_CHUNKS,
    ENV_MAX_RECEIVE_COUNT,
    ENV_MODEL_SOURCE,
)
from maas.tables import API_KEYS, JOBS, TENANTS, USAGE, create_table_kwargs
from maas.tenancy.plans import default_plans
from maas.tenancy.store import TenantStore
from maas.tools.local.batch import QueueDriver, event_for_object
from maas.tools.local.emulator import aws_env, table_env
from maas.tools.local.functions import LambdaContext, load_handler

RECEIVES = 3


@pytest.fixture
def env(aws):
    ddb, s3, sqs = aws.client("dynamodb"), aws.client("s3"), aws.client("sqs")
    bucket = f"jobs-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    suffix = uuid.uuid4().hex[:8]
    dlq = sqs.create_queue(QueueName=f"dlq-{suffix}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(
        QueueName=f"requests-{suffix}",
        Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(RECEIVES)})},
    )["QueueUrl"]
    usage = f"usage-{suffix}"
    ddb.create_table(**create_table_kwargs(USAGE, name=usage))
    tenants = TenantStore(ddb, TENANTS.local_name, API_KEYS.local_name)
    tenant = tenants.create_tenant("Queue Co", "pro")
    yield {
        "ddb": ddb,
        "s3": s3,
        "sqs": sqs,
        "bucket": bucket,
        "queue": queue,
        "dlq": dlq,
        "usage": usage,
        "tenant": tenant,
        "tenants": tenants,
        "meter": Meter(ddb, usage),
    }
    ddb.delete_table(TableName=usage)


def _worker(env, embedder, dlq=True) -> BatchWorker:
    return BatchWorker(
        embedder=embedder,
        manifest=embedder.manifest,
        billing=Billing(env["meter"], default_plans()),
        jobs=JobStore(env["ddb"], JOBS.local_name),
        tenants=env["tenants"],
        s3=env["s3"],
        sqs=env["sqs"],
        dlq_url=env["dlq"] if dlq else None,
        max_receive_count=RECEIVES,
        job_bucket=env["bucket"],
    )


def _send(env, body) -> str:
    return env["sqs"].send_message(QueueUrl=env["queue"], MessageBody=json.dumps(body))["MessageId"]


def _billed(env) -> list:
    return env["meter"].events(env["tenant"].tenant_id, 0, 4e9)


def _good(env, i: int) -> dict:
    return {"tenant_id": env["tenant"].tenant_id, "input": [f"request {i}", "second text"], "request_id": f"r-{i}"}


def test_one_poison_message_fails_alone_and_reaches_the_dlq_with_its_error(env, embedder):
    good_ids = [_send(env, _good(env, i)) for i in range(4)]
    poison = _send(env, {"tenant_id": env["tenant"].tenant_id, "input": 42})
    driver = QueueDriver(env["sqs"], env["queue"], _worker(env, embedder).handle_sqs_event)

    delivered, failed = driver.poll()

    assert delivered == 5 and failed == [poison]
    billed = _billed(env)
    assert len(billed) == 4  # metered once per good message
    for i, _ in enumerate(good_ids):
        key = f"results/{env['tenant'].tenant_id}/requests/r-{i}.json"
        result = json.loads(env["s3"].get_object(Bucket=env["bucket"], Key=key)["Body"].read())
        assert len(result["data"]) == 2 and result["usage"]["total_tokens"] > 0
    failures = [driver.poll()[1] for _ in range(RECEIVES - 1)]
    assert failures == [[poison], []]  # failed on receive 2, forwarded to the DLQ on its last receive (3)
    assert driver.poll() == (0, [])
    dead = env["sqs"].receive_message(QueueUrl=env["dlq"], MessageAttributeNames=["All"])["Messages"]
    assert len(dead) == 1 and json.loads(dead[0]["Body"])["input"] == 42
    assert "PoisonMessage" in dead[0]["MessageAttributes"]["error"]["StringValue"]
    assert dead[0]["MessageAttributes"]["receive_count"]["StringValue"] == str(RECEIVES)
    assert len(_billed(env)) == 4


def test_without_forwarding_the_redrive_policy_moves_it_after_n_receives(env, embedder):
    poison = _send(env, "not an object")
    driver = QueueDriver(env["sqs"], env["queue"], _worker(env, embedder, dlq=False).handle_sqs_event)

    failures = [driver.poll()[1] for _ in range(RECEIVES)]

    assert failures == [[poison]] * RECEIVES
    assert driver.poll() == (0, [])
    dead = env["sqs"].receive_message(QueueUrl=env["dlq"])["Messages"]
    assert [m["MessageId"] for m in dead] == [poison]


def test_a_redelivered_request_is_billed_once(env, embedder):
    _send(env, _good(env, 7))
    _send(env, _good(env, 7))  # the same request sent twice
    QueueDriver(env["sqs"], env["queue"], _worker(env, embedder).handle_sqs_event).drain()
    assert len(_billed(env)) == 1


def _function_env(aws, model_dir, env, **extra) -> dict[str, str]:
    return {
        **aws_env(aws.url),
        **table_env(),
        USAGE.env_var: env["usage"],
        ENV_MODEL_SOURCE: str(model_dir),
        ENV_JOB_BUCKET: env["bucket"],
        ENV_DLQ_URL: env["dlq"],
        ENV_MAX_RECEIVE_COUNT: str(RECEIVES),
        **extra,
    }


def test_the_real_handlers_upload_to_results_through_the_job_api(aws, model_dir, env):
    """POST /v1/jobs -> presigned PUT -> S3 event -> batch_s3 (one part) -> continuation -> batch_sqs ->
    GET /v1/jobs/{id}: completed, with progress and result URLs; another tenant gets a 404."""
    import urllib.request

    from maas.tools.local.apigw import make_event

    fenv = _function_env(
        aws,
        model_dir,
        env,
        **{ENV_CHUNK_LINES: "3", ENV_MAX_CHUNKS: "1", ENV_CONTINUATION_QUEUE_URL: env["queue"]},
    )
    jobs = load_handler("jobs", fenv)
    batch_s3 = load_handler("batch_s3", fenv)
    batch_sqs = load_handler("batch_sqs", fenv)
    tenant = env["tenant"].tenant_id
    auth = {"principalId": tenant, "tenant_id": tenant, "plan": "pro", "key_prefix": "maas_abcd1234"}

    def call(method, path, body=None, who=auth):
        event = make_event(
            method,
            path,
            headers={"Content-Type": "application/json"},
            body=json.dumps(body).encode() if body is not None else None,
            authorizer=who,
        )
        event["resource"] = "/v1/jobs/{id}" if path.count("/") == 3 else path
        result = jobs(event, LambdaContext(function_name="jobs"))
        return result["statusCode"], json.loads(result["body"])

    status, created = call("POST", "/v1/jobs", {"model": "all-minilm-l6-v2", "input_format": "jsonl"})
    assert status == 201 and created["status"] == "awaiting_upload"
    data = "".join(json.dumps(f"uploaded text {i}") + "\n" for i in range(8)).encode()
    # urllib's default form Content-Type makes moto store an empty object; S3 itself takes any type.
    headers = {"Content-Type": "application/x-ndjson"}
    request = urllib.request.Request(created["upload"]["url"], data=data, method="PUT", headers=headers)
    with urllib.request.urlopen(request) as response:
        assert response.status == 200
    key = f"jobs/{tenant}/{created['id']}/input.jsonl"
    out = batch_s3(event_for_object(env["s3"], env["bucket"], key), LambdaContext(function_name="batch_s3"))
    assert out["jobs"][0]["continued"]
    status, running = call("GET", f"/v1/jobs/{created['id']}")
    assert running["status"] == "running" and running["progress"]["lines"] == 3
    QueueDriver(env["sqs"], env["queue"], batch_sqs).drain()

    status, done = call("GET", f"/v1/jobs/{created['id']}")
    assert status == 200 and done["status"] == "completed"
    assert done["progress"] == {"lines": 8, "succeeded": 8, "failed": 0, "parts": 3}
    lines = []
    for url in done["results"]["part_urls"]:
        with urllib.request.urlopen(url) as response:
            lines += [json.loads(x) for x in response.read().splitlines()]
    assert [r["line"] for r in lines] == list(range(1, 9))
    assert done["usage"]["units"] == sum(e.units for e in _billed(env)) == sum(r["tokens"] for r in lines)

    other = {**auth, "principalId": "t-someone-else", "tenant_id": "t-someone-else"}
    status, body = call("GET", f"/v1/jobs/{created['id']}", who=other)
    assert status == 404 and body["error"]["code"] == "job_not_found"
    status, listed = call("GET", "/v1/jobs", who=other)
    assert status == 200 and listed["data"] == []
    status, body = call("POST", "/v1/jobs", {"input_format": "xml"})
    assert status == 400
