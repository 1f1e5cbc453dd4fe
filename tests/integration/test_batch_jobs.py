"""S3 batch jobs on the emulator: order, exactly-once billing, bad lines, chunked continuation, isolation."""

from __future__ import annotations

import base64
import json
import uuid

import numpy as np
import pytest

from maas.jobs import store as j
from maas.jobs.records import csv_bytes
from maas.jobs.store import JobStore
from maas.jobs.worker import BatchWorker
from maas.metering.charge import Billing
from maas.metering.store import Meter
from maas.tables import API_KEYS, JOBS, TENANTS, USAGE, create_table_kwargs
from maas.tenancy.plans import default_plans
from maas.tenancy.store import SUSPENDED, TenantStore
from maas.tools.local.batch import QueueDriver, event_for_object
from maas.tools.local.functions import LambdaContext


@pytest.fixture
def env(aws, model_dir, embedder):
    """A versioned job bucket, a fresh usage table (moto's transactions copy the table), an active tenant."""
    ddb, s3 = aws.client("dynamodb"), aws.client("s3")
    bucket = f"jobs-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    usage = f"usage-{uuid.uuid4().hex[:8]}"
    ddb.create_table(**create_table_kwargs(USAGE, name=usage))
    tenants = TenantStore(ddb, TENANTS.local_name, API_KEYS.local_name)
    tenant = tenants.create_tenant("Batch Co", "pro")
    meter = Meter(ddb, usage)

    def worker(**kwargs) -> BatchWorker:
        return BatchWorker(
            embedder=embedder,
            manifest=embedder.manifest,
            billing=Billing(meter, default_plans()),
            jobs=JobStore(ddb, JOBS.local_name),
            tenants=tenants,
            s3=s3,
            **kwargs,
        )

    yield {"s3": s3, "bucket": bucket, "tenant": tenant, "tenants": tenants, "meter": meter, "worker": worker}
    ddb.delete_table(TableName=usage)


def _upload(env, body: bytes, name: str = "input.jsonl", fmt: str = "jsonl") -> dict:
    """Make a job through the store (as POST /v1/jobs does), upload its file, return the S3 event."""
    job_id = j.new_job_id()
    JobStore(env["worker"]().jobs.ddb, JOBS.local_name).create(
        env["tenant"].tenant_id, job_id, "all-minilm-l6-v2", fmt, "base64", key_prefix="maas_test0000"
    )
    key = j.input_key(env["tenant"].tenant_id, job_id, fmt)
    env["s3"].put_object(Bucket=env["bucket"], Key=key, Body=body)
    return event_for_object(env["s3"], env["bucket"], key)


def _results(env, job_id: str) -> list[dict]:
    s3, tenant = env["s3"], env["tenant"].tenant_id
    manifest = json.loads(
        s3.get_object(Bucket=env["bucket"], Key=j.manifest_key("results/", tenant, job_id))["Body"].read()
    )
    lines = []
    for key in manifest["parts"]:
        lines += [json.loads(x) for x in s3.get_object(Bucket=env["bucket"], Key=key)["Body"].read().splitlines()]
    return lines


def _units(env) -> tuple[int, int]:
    """(units billed this month, number of billed events) for the test's tenant."""
    rows = env["meter"].events(env["tenant"].tenant_id, 0, 4e9)
    return sum(e.units for e in rows), len(rows)


def _job_id(event) -> str:
    return event["Records"][0]["s3"]["object"]["key"].split("/")[2]


def test_ten_thousand_lines_in_order_billed_once_each(env, embedder):
    texts = [f"line {i} of the batch" for i in range(10_000)]
    event = _upload(env, "".join(json.dumps(t) + "\n" for t in texts).encode())
    worker = env["worker"](chunk_lines=2500)

    out = worker.handle_s3_event(event, LambdaContext(timeout_s=900))

    assert out["jobs"][0]["status"] == j.COMPLETED and out["rejected"] == 0
    lines = _results(env, _job_id(event))
    assert [r["line"] for r in lines] == list(range(1, 10_001))
    assert all("embedding" in r for r in lines)
    expected_tokens = [len(e.ids) for e in embedder.tokenize(texts)]
    assert [r["tokens"] for r in lines] == expected_tokens
    units, events = _units(env)
    assert units == sum(expected_tokens) and events == 4  # one usage event per part of 2,500 lines
    first = np.frombuffer(base64.b64decode(lines[0]["embedding"]), "<f4")
    assert np.allclose(first, embedder.embed([texts[0]]).vectors[0], atol=1e-5)
    last = np.frombuffer(base64.b64decode(lines[-1]["embedding"]), "<f4")
    assert np.allclose(last, embedder.embed([texts[-1]]).vectors[0], atol=1e-5)
    job = worker.jobs.get(env["tenant"].tenant_id, _job_id(event))
    assert (job.lines, job.succeeded, job.failed, job.units, job.parts) == (10_000, 10_000, 0, units, 4)


def test_duplicate_event_writes_and_bills_once(env):
    event = _upload(env, b"".join(json.dumps(f"text {i}").encode() + b"\n" for i in range(30)))
    worker = env["worker"](chunk_lines=10)
    worker.handle_s3_event(event, LambdaContext(timeout_s=900))
    billed = _units(env)

    again = worker.handle_s3_event(json.loads(json.dumps(event)), LambdaContext(timeout_s=900))

    assert again["jobs"][0]["note"] == "duplicate"
    assert _units(env) == billed and billed[1] == 3
    versions = env["s3"].list_object_versions(Bucket=env["bucket"], Prefix="results/")["Versions"]
    assert len(versions) == 4  # three parts and the manifest, each written once
    assert len(_results(env, _job_id(event))) == 30


def test_bad_lines_are_reported_and_the_rest_completes(env):
    good = [json.dumps({"input": f"good line {i}", "custom_id": f"c{i}"}) for i in range(20)]
    lines = good[:5] + ["{not json"] + good[5:12] + ["   "] + good[12:] + ["42"]
    event = _upload(env, ("\n".join(lines) + "\n").encode())
    worker = env["worker"](chunk_lines=8)

    worker.handle_s3_event(event, LambdaContext(timeout_s=900))

    results = _results(env, _job_id(event))
    assert [r["line"] for r in results] == list(range(1, 24))
    bad = [r["line"] for r in results if "error" in r]
    assert bad == [6, 14, 23]
    assert all(r["error"]["code"] == "invalid_line" for r in results if "error" in r)
    assert [r["custom_id"] for r in results if "embedding" in r] == [f"c{i}" for i in range(20)]
    job = worker.jobs.get(env["tenant"].tenant_id, _job_id(event))
    assert (job.status, job.succeeded, job.failed) == (j.COMPLETED, 20, 3)
    assert _units(env)[0] == sum(r["tokens"] for r in results if "embedding" in r)


def test_chunked_job_continues_through_the_queue_without_loss_or_duplicates(env, aws):
    sqs = aws.client("sqs")
    queue = sqs.create_queue(QueueName=f"requests-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    texts = [f"chunked input number {i}" for i in range(50)]
    event = _upload(env, "".join(json.dumps(t) + "\n" for t in texts).encode())
    worker = env["worker"](chunk_lines=7, max_chunks=2, sqs=sqs, continuation_queue_url=queue)

    first = worker.handle_s3_event(event, LambdaContext(timeout_s=900))
    assert first["jobs"][0]["continued"] and first["jobs"][0]["parts_done"] == 2
    # The same event delivered again while the job runs: it continues from the cursor, it does not restart.
    worker.handle_s3_event(json.loads(json.dumps(event)), LambdaContext(timeout_s=900))
    # A continuation message delivered twice (SQS is at-least-once).
    message = sqs.receive_message(QueueUrl=queue)["Messages"][0]
    sqs.send_message(QueueUrl=queue, MessageBody=message["Body"])
    sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    QueueDriver(sqs, queue, worker.handle_sqs_event).drain()

    results = _results(env, _job_id(event))
    assert [r["line"] for r in results] == list(range(1, 51))
    job = worker.jobs.get(env["tenant"].tenant_id, _job_id(event))
    assert (job.status, job.lines, job.parts) == (j.COMPLETED, 50, 8)
    units, events = _units(env)
    assert events == 8 and units == sum(r["tokens"] for r in results) == job.units


def test_csv_job_with_header_and_a_short_record(env):
    body = csv_bytes([["custom_id", "input"], ["a", "first text"], ["b", "second, with a comma"], ["c"]])
    event = _upload(env, body, fmt="csv")
    worker = env["worker"](chunk_lines=2)

    worker.handle_s3_event(event, LambdaContext(timeout_s=900))

    results = _results(env, _job_id(event))
    assert [r["line"] for r in results] == [2, 3, 4]
    assert [r.get("custom_id") for r in results[:2]] == ["a", "b"]
    assert "fields" in results[2]["error"]["message"]


@pytest.mark.parametrize(
    "key",
    [
        "jobs/../etc/passwd.jsonl",
        "jobs/%2E%2E/x.jsonl",
        "other/{tenant}/x.jsonl",
        "jobs/{tenant}/sub/dir/x.jsonl",
        "jobs/t-nobody-here/x.jsonl",
        "jobs/{tenant}/job_000000000000000000000000/input.jsonl",  # no such job
        "jobs/{tenant}//x.jsonl",
        "jobs/{tenant}/x.txt",
    ],
)
def test_keys_outside_a_tenant_prefix_are_rejected(env, key):
    key = key.format(tenant=env["tenant"].tenant_id)
    env["s3"].put_object(Bucket=env["bucket"], Key=key, Body=b'"hello"\n')
    event = event_for_object(env["s3"], env["bucket"], key)

    out = env["worker"]().handle_s3_event(event, LambdaContext(timeout_s=900))

    assert out == {"statusCode": 200, "jobs": [], "rejected": 1}
    assert _units(env) == (0, 0)


def test_a_dropped_file_becomes_a_job_and_a_suspended_tenant_is_refused(env):
    tenant = env["tenant"].tenant_id
    key = f"jobs/{tenant}/my-texts.jsonl"
    env["s3"].put_object(Bucket=env["bucket"], Key=key, Body=b'"one"\n"two"\n')
    out = env["worker"]().handle_s3_event(event_for_object(env["s3"], env["bucket"], key), LambdaContext())
    assert out["jobs"][0]["status"] == j.COMPLETED and out["jobs"][0]["job_id"].startswith("job_")

    env["tenants"].set_status(tenant, SUSPENDED)
    key2 = f"jobs/{tenant}/more.jsonl"
    env["s3"].put_object(Bucket=env["bucket"], Key=key2, Body=b'"three"\n')
    out = env["worker"]().handle_s3_event(event_for_object(env["s3"], env["bucket"], key2), LambdaContext())
    assert out["rejected"] == 1 and _units(env)[1] == 1


POISON_LINES = [
    (b"[" * 5000 + b"]" * 5000, "nested too deeply"),  # RecursionError in json.loads
    (b'{"input": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested too deeply"),
    (b"9" * 5000, "digits"),  # beyond Python's integer digit limit
    (b'{"input": 1e999}', "expected a JSON string"),  # a huge number is a number, not a text
    (b'{"input": ["a", "b"]}', "expected a JSON string"),
    (b'{"input": "x", "custom_id": {"a": 1}}', "'custom_id' must be a string"),
    (b'"half a pair \\ud800"', "unpaired UTF-16 surrogate"),  # valid JSON, not valid Unicode: no tokenizer takes it
    (b'{"input": "ok", "custom_id": "\\udc00"}', "unpaired UTF-16 surrogate"),
    (b"\xc3\x28 not utf-8", "not valid UTF-8"),
    (b'"' + b"x" * 900_000 + b'"', "longer than"),
]


def test_poison_lines_are_error_lines_and_the_rest_is_served_and_billed_once(env, embedder):
    # GIVEN a file where every other line is one a careless or hostile client could send
    good = [f"good text number {i}" for i in range(len(POISON_LINES) + 1)]
    raw = []
    for i, (poison, _) in enumerate(POISON_LINES):
        raw += [json.dumps(good[i]).encode(), poison]
    raw.append(json.dumps(good[-1]).encode())
    event = _upload(env, b"\n".join(raw) + b"\n")
    worker = env["worker"](chunk_lines=4)

    # WHEN the worker runs it, and the same S3 event is delivered again
    out = worker.handle_s3_event(event, LambdaContext(timeout_s=900))
    again = worker.handle_s3_event(json.loads(json.dumps(event)), LambdaContext(timeout_s=900))

    # THEN the job completes: each poison line is an error line with its reason, every good line is served in
    # order, and the tokens of the good lines are billed once
    assert out["jobs"][0]["status"] == j.COMPLETED and again["jobs"][0]["note"] == "duplicate"
    results = _results(env, _job_id(event))
    assert [r["line"] for r in results] == list(range(1, len(raw) + 1))
    errors = [r for r in results if "error" in r]
    assert [r["line"] for r in errors] == [2 * (i + 1) for i in range(len(POISON_LINES))]
    for result, (_, reason) in zip(errors, POISON_LINES, strict=True):
        assert result["error"]["code"] == "invalid_line" and reason in result["error"]["message"], result
    served = [r for r in results if "embedding" in r]
    assert [r["line"] for r in served] == [2 * i + 1 for i in range(len(good))]
    assert [r["tokens"] for r in served] == [len(e.ids) for e in embedder.tokenize(good)]
    job = worker.jobs.get(env["tenant"].tenant_id, _job_id(event))
    assert (job.status, job.succeeded, job.failed, job.error) == (j.COMPLETED, len(good), len(POISON_LINES), None)
    units, events = _units(env)
    assert units == job.units == sum(r["tokens"] for r in served)
    assert events == job.parts  # one usage event per part, none again for the duplicate event


@pytest.mark.parametrize(
    ("body", "fmt"),
    [(b"", "jsonl"), (b"input\n", "csv"), (b"custom_id,input\r\n", "csv")],
    ids=["empty-jsonl", "csv-header-only", "csv-header-crlf"],
)
def test_an_input_with_no_lines_fails_with_a_reason(env, body, fmt):
    # GIVEN an uploaded file with nothing to embed
    event = _upload(env, body, fmt=fmt)
    worker = env["worker"]()

    # WHEN the worker runs it
    out = worker.handle_s3_event(event, LambdaContext(timeout_s=900))

    # THEN the job ends failed, says why, wrote no results and billed nothing
    assert out["jobs"][0]["status"] == j.FAILED
    job = worker.jobs.get(env["tenant"].tenant_id, _job_id(event))
    assert job.status == j.FAILED and job.error == "empty_input: the file has no input lines"
    assert (job.lines, job.parts) == (0, 0)
    assert "Contents" not in env["s3"].list_objects_v2(Bucket=env["bucket"], Prefix="results/")
    assert _units(env) == (0, 0)
