"""What reaches the batch worker: S3 notifications and SQS messages."""

import json

import pytest

from maas.jobs.sources import EmbeddingRequest, PoisonMessage, continuation, parse_message, uploads
from maas.jobs.store import ObjectRef


def test_an_s3_notification_lists_each_uploaded_file_with_its_version():
    # GIVEN a notification for a versioned and an unversioned bucket
    event = {
        "Records": [
            {"s3": {"bucket": {"name": "b1"}, "object": {"key": "jobs/acme/a.jsonl", "versionId": "v9"}}},
            {"s3": {"bucket": {"name": "b2"}, "object": {"key": "jobs/acme/b.csv", "eTag": "abc"}}},
        ]
    }

    # WHEN its uploads are read
    found = uploads(event)

    # THEN each names its bucket and key, and a file without a version id is pinned by its ETag
    assert [(u.bucket, u.key, u.version) for u in found] == [
        ("b1", "jobs/acme/a.jsonl", "v9"),
        ("b2", "jobs/acme/b.csv", "etag:abc"),
    ]
    assert found[0].ref().tenant_id == "acme"
    assert len(found[0].key_sha256) == 16 and "acme" not in found[0].key_sha256


def test_a_continuation_message_round_trips_to_its_job_file():
    # GIVEN a job file reference
    ref = ObjectRef("bucket", "jobs/acme/my-texts.jsonl", "v1", "acme", "job_x", "jsonl", True)

    # WHEN it is sent as a continuation and the message is parsed
    parsed = parse_message(continuation(ref))

    # THEN the same file comes back, attributed to the same tenant
    assert isinstance(parsed, ObjectRef)
    assert (parsed.bucket, parsed.key, parsed.version, parsed.tenant_id) == (ref.bucket, ref.key, ref.version, "acme")


def test_an_inference_request_message_is_validated():
    # GIVEN a request for two texts
    body = json.dumps({"tenant_id": "acme", "input": ["a", "b"], "request_id": "r-1"})

    # WHEN it is parsed
    parsed = parse_message(body)

    # THEN it is an inference request with the documented default encoding
    assert isinstance(parsed, EmbeddingRequest)
    assert (parsed.tenant_id, parsed.input, parsed.encoding_format) == ("acme", ["a", "b"], "float")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json", "not JSON"),
        (json.dumps({"maas": "job.continue", "bucket": "b"}), "invalid continuation"),
        (
            json.dumps({"maas": "job.continue", "bucket": "b", "key": "results/x", "version": "v"}),
            "invalid continuation",
        ),
        (json.dumps({"tenant_id": "acme", "input": 42}), "invalid request"),
        (json.dumps({"tenant_id": "Not A Tenant", "input": "x"}), "invalid request"),
        (json.dumps({"tenant_id": "acme", "input": "x", "surprise": 1}), "invalid request"),
    ],
)
def test_a_message_that_is_neither_is_poison(body, reason):
    # GIVEN a message the worker can never process
    # WHEN it is parsed
    # THEN it is poison, with a reason that says why (it ends in the DLQ with it)
    with pytest.raises(PoisonMessage, match=reason):
        parse_message(body)
