"""Failed events: which jobs each shape names and the reason it gives (maas.jobs.failures.failed_event)."""

import json

import pytest

from maas.jobs.failures import MAX_REASON_CHARS, failed_event
from maas.jobs.sources import continuation
from maas.jobs.store import parse_key
from maas.tools.local.batch import s3_put_event

JOB = "job_" + "0123456789abcdef01234567"
KEY = f"jobs/acme/{JOB}/input.jsonl"


def _destination(response: dict | None, condition: str = "RetriesExhausted") -> str:
    record = {
        "requestContext": {"condition": condition, "approximateInvokeCount": 3},
        "requestPayload": s3_put_event("bucket", KEY, 10, "etag", "v1"),
        "responseContext": {"functionError": "Unhandled"},
    }
    if response is not None:
        record["responsePayload"] = response
    return json.dumps(record)


def test_a_destination_record_names_the_job_and_the_worker_error():
    # GIVEN the S3 worker's destination record after a timeout on every try (Lambda sends no errorType then)
    body = _destination({"errorMessage": "Task timed out after 900.00 seconds"})

    # WHEN it is read
    event = failed_event(body)

    # THEN it names the job file's version and says how often the worker tried and why it failed
    assert [(r.tenant_id, r.job_id, r.version) for r in event.jobs] == [("acme", JOB, "v1")]
    assert event.reason == (
        "worker_failed: the job's worker gave up after 3 tries (error: Task timed out after 900.00 seconds)"
    )


def test_an_event_too_old_to_run_says_so():
    event = failed_event(_destination(None, condition="EventAgeExceeded"))
    assert event.reason == "worker_failed: the job's worker gave up after 3 tries (EventAgeExceeded)"


@pytest.mark.parametrize(
    ("error", "receives", "reason"),
    [
        (None, None, "failed on every receive (the worker timed out or crashed before it answered)"),
        ("MemoryError: out of memory", 3, "failed on 3 receives (MemoryError: out of memory)"),
    ],
)
def test_a_continuation_names_its_job_with_the_forwarded_error_or_the_redrive(error, receives, reason):
    body = continuation(parse_key("bucket", KEY, "v1", url_encoded=False))
    event = failed_event(body, error, receives)
    assert [r.job_id for r in event.jobs] == [JOB]
    assert event.reason == f"worker_failed: the job's continuation {reason}"


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"tenant_id": "acme", "input": "an inference request"}),
        "not json",
        json.dumps([1, 2]),
        json.dumps({"maas": "job.continue", "bucket": "b", "key": "jobs/../x.jsonl", "version": "v"}),
        json.dumps({"requestPayload": s3_put_event("bucket", "elsewhere/x.jsonl", 1, "e")}),
    ],
)
def test_anything_else_names_no_job(body):
    assert failed_event(body, "why").jobs == ()


def test_a_reason_is_bounded():
    event = failed_event(_destination({"errorType": "ValueError", "errorMessage": "x" * 10_000}))
    assert len(event.reason) == MAX_REASON_CHARS
