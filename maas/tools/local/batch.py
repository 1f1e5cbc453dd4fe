"""Drive the batch functions locally the way AWS does: S3 notification events and an SQS event source mapping.

``s3_put_event`` builds the ObjectCreated:Put event S3 sends (SAM's shape). ``QueueDriver`` does what
Lambda's SQS event source mapping does: receive up to a batch of messages, invoke the function with them,
delete the ones not reported in ``batchItemFailures`` and make the failed ones visible again at once (the
queue's redrive policy counts the receives). ``maas serve`` and the tests use both.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import quote_plus

from maas.tools.local.functions import ACCOUNT_ID, REGION, LambdaContext


def s3_put_event(bucket: str, key: str, size: int, etag: str, version_id: str | None = None) -> dict:
    """An S3 ObjectCreated:Put notification for one object (the key URL-encoded, as S3 sends it)."""
    obj = {"key": quote_plus(key, safe="/"), "size": size, "eTag": etag.strip('"'), "sequencer": f"{time.time_ns():X}"}
    if version_id and version_id != "null":
        obj["versionId"] = version_id
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": REGION,
                "eventTime": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": "AWS:LOCAL"},
                "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {"x-amz-request-id": "LOCAL", "x-amz-id-2": "LOCAL"},
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "maas-jobs",
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": "LOCAL"},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    "object": obj,
                },
            }
        ]
    }


def event_for_object(s3_client, bucket: str, key: str) -> dict:
    """The notification S3 would send for the object now at ``key``."""
    head = s3_client.head_object(Bucket=bucket, Key=key)
    return s3_put_event(bucket, key, head["ContentLength"], head["ETag"], head.get("VersionId"))


def queue_arn(queue_url: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{queue_url.rstrip('/').rsplit('/', 1)[-1]}"


def sqs_event(messages: list[dict], arn: str) -> dict:
    """The event Lambda's SQS event source mapping sends for messages from ReceiveMessage."""
    records = []
    for m in messages:
        attributes = dict(m.get("Attributes") or {})
        attributes.setdefault("ApproximateReceiveCount", "1")
        records.append(
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": attributes,
                "messageAttributes": {
                    k: {
                        "stringValue": v.get("StringValue"),
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": v["DataType"],
                    }
                    for k, v in (m.get("MessageAttributes") or {}).items()
                },
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": REGION,
            }
        )
    return {"Records": records}


class QueueDriver:
    """One SQS event source mapping: ``poll()`` delivers one batch to ``handler`` and settles it."""

    def __init__(
        self,
        sqs_client,
        queue_url: str,
        handler: Callable[[dict, object], dict],
        batch_size: int = 10,
        function_name: str = "batch_sqs",
        timeout_s: float = 120.0,
    ):
        self.sqs, self.queue_url, self.handler = sqs_client, queue_url, handler
        self.batch_size, self.function_name, self.timeout_s = batch_size, function_name, timeout_s
        self.arn = queue_arn(queue_url)

    def poll(self, wait_s: int = 0) -> tuple[int, list[str]]:
        """(messages delivered, ids reported failed). A handler that raises fails the whole batch."""
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=wait_s,
        ).get("Messages", [])
        if not messages:
            return 0, []
        context = LambdaContext(function_name=self.function_name, timeout_s=self.timeout_s)
        try:
            result = self.handler(sqs_event(messages, self.arn), context)
            failed = {f["itemIdentifier"] for f in (result or {}).get("batchItemFailures", [])}
        except Exception:
            failed = {m["MessageId"] for m in messages}
        for m in messages:
            if m["MessageId"] in failed:
                self.sqs.change_message_visibility(
                    QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
                )
            else:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])
        return len(messages), sorted(failed)

    def drain(self, max_polls: int = 1000) -> int:
        """Poll until the queue is empty; returns the number of polls that delivered something."""
        polls = 0
        for _ in range(max_polls):
            delivered, _ = self.poll()
            if not delivered:
                return polls
            polls += 1
        return polls


def job_events_from_queue(sqs_client, queue_url: str) -> list[dict]:
    """S3 notifications that moto delivered to an SQS queue, as the events Lambda would receive (consumed)."""
    events = []
    messages = sqs_client.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    for m in messages:
        body = json.loads(m["Body"])
        if body.get("Records"):
            events.append(body)
        sqs_client.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
    return events


LOCAL_JOB_BUCKET = "maas-local-jobs"
LOCAL_REQUESTS_QUEUE = "maas-local-requests"
LOCAL_DEAD_LETTERS = "maas-local-dead-letters"
LOCAL_JOB_EVENTS_QUEUE = "maas-local-job-events"  # moto delivers the bucket's notifications here
POLL_INTERVAL_S = 0.2


def batch_env(emulator_url: str, model_dir, queue_url: str, dlq_url: str, extra: dict | None = None) -> dict[str, str]:
    """What the stack gives the batch workers, pointed at the emulator."""
    from maas.settings import names as c
    from maas.tools.local.emulator import aws_env, table_env

    return {
        **aws_env(emulator_url),
        **table_env(),
        c.ENV_MODEL_SOURCE: str(model_dir),
        c.ENV_JOB_BUCKET: LOCAL_JOB_BUCKET,
        c.ENV_CONTINUATION_QUEUE_URL: queue_url,
        c.ENV_DLQ_URL: dlq_url,
        c.ENV_MAX_RECEIVE_COUNT: str(c.DEFAULT_MAX_RECEIVE_COUNT),
        **(extra or {}),
    }


def start_batch_workers(emulator, model_dir, extra_env: dict | None = None) -> Callable[[], None]:
    """For `maas serve`: the job bucket (versioned, ObjectCreated under jobs/ -> a queue), the requests queue
    with its DLQ, the batch_s3 and batch_sqs handlers, and a thread that delivers their events as S3 and the
    SQS event source mapping would. ``extra_env``: more variables for the workers (the heavy models' endpoints).
    Returns the function that stops the thread."""
    import threading

    from maas.settings.names import DEFAULT_MAX_RECEIVE_COUNT, JOBS_PREFIX
    from maas.tools.local.functions import load_handler

    s3, sqs = emulator.client("s3"), emulator.client("sqs")
    s3.create_bucket(Bucket=LOCAL_JOB_BUCKET)
    s3.put_bucket_versioning(Bucket=LOCAL_JOB_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    dlq = sqs.create_queue(QueueName=LOCAL_DEAD_LETTERS)["QueueUrl"]
    redrive = {"deadLetterTargetArn": queue_arn(dlq), "maxReceiveCount": str(DEFAULT_MAX_RECEIVE_COUNT)}
    requests = sqs.create_queue(QueueName=LOCAL_REQUESTS_QUEUE, Attributes={"RedrivePolicy": json.dumps(redrive)})[
        "QueueUrl"
    ]
    events = sqs.create_queue(QueueName=LOCAL_JOB_EVENTS_QUEUE)["QueueUrl"]
    s3.put_bucket_notification_configuration(
        Bucket=LOCAL_JOB_BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": queue_arn(events),
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": JOBS_PREFIX}]}},
                }
            ]
        },
    )
    env = batch_env(emulator.url, model_dir, requests, dlq, extra_env)
    batch_s3 = load_handler("batch_s3", env)
    driver = QueueDriver(sqs, requests, load_handler("batch_sqs", env))
    stop = threading.Event()
    log = __import__("logging").getLogger(__name__)

    def loop() -> None:
        while not stop.is_set():
            busy = False
            try:
                for event in job_events_from_queue(sqs, events):
                    busy = True
                    batch_s3(event, LambdaContext(function_name="batch_s3", timeout_s=900.0))
                busy = driver.poll()[0] > 0 or busy
            except Exception:  # a failed delivery is logged; the loop, like the event sources, goes on
                log.exception("local batch delivery failed")
            if not busy:
                stop.wait(POLL_INTERVAL_S)

    thread = threading.Thread(target=loop, name="maas-local-batch", daemon=True)
    thread.start()

    def stop_workers() -> None:
        stop.set()
        thread.join(timeout=30)

    return stop_workers
