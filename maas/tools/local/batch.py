"""Drive the batch functions locally the way AWS does: S3 notification events and an SQS event source mapping.

``s3_put_event`` builds the ObjectCreated:Put event S3 sends (SAM's shape). ``QueueDriver`` does what
Lambda's SQS event source mapping does: receive up to a batch of messages, invoke the function with them,
delete the ones not reported in ``batchItemFailures`` and make the failed ones visible again at once (the
queue's redrive policy counts the receives). ``maas serve`` and the tests use both.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
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
LOCAL_FAILED_EVENTS = "maas-local-failed-events"  # what the workers gave up on: functions/failed_events reads it
LOCAL_DEAD_LETTERS = "maas-local-dead-letters"  # where failed_events parks every failed event
LOCAL_JOB_EVENTS_QUEUE = "maas-local-job-events"  # moto delivers the bucket's notifications here
POLL_INTERVAL_S = 0.2
ASYNC_RETRY_ATTEMPTS = 2  # Lambda's asynchronous invocation retries a failed event twice (infra/batch.py)


@dataclass(frozen=True)
class BatchQueues:
    requests: str
    failed_events: str
    dead_letters: str
    job_events: str


def create_batch_resources(emulator) -> BatchQueues:
    """The job bucket (versioned, ObjectCreated under jobs/ -> a queue standing in for the S3 worker's trigger),
    the requests queue (redriven to the failed-events queue after maxReceiveCount receives), the failed-events
    queue and the dead-letter queue, as infra/batch.py makes them. Idempotent."""
    from maas.settings.names import DEFAULT_MAX_RECEIVE_COUNT, JOBS_PREFIX

    s3, sqs = emulator.client("s3"), emulator.client("sqs")
    s3.create_bucket(Bucket=LOCAL_JOB_BUCKET)
    s3.put_bucket_versioning(Bucket=LOCAL_JOB_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    dead_letters = sqs.create_queue(QueueName=LOCAL_DEAD_LETTERS)["QueueUrl"]
    # A message redriven from the requests queue keeps its receive count: the failed-events queue allows more.
    parked = {"deadLetterTargetArn": queue_arn(dead_letters), "maxReceiveCount": str(2 * DEFAULT_MAX_RECEIVE_COUNT)}
    failed = sqs.create_queue(QueueName=LOCAL_FAILED_EVENTS, Attributes={"RedrivePolicy": json.dumps(parked)})[
        "QueueUrl"
    ]
    redrive = {"deadLetterTargetArn": queue_arn(failed), "maxReceiveCount": str(DEFAULT_MAX_RECEIVE_COUNT)}
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
    return BatchQueues(requests, failed, dead_letters, events)


def batch_env(emulator_url: str, model_dir, queues: BatchQueues, extra: dict | None = None) -> dict[str, str]:
    """What the stack gives the batch workers and the failed-events function, pointed at the emulator."""
    from maas.settings import names as c
    from maas.tools.local.emulator import aws_env, table_env

    return {
        **aws_env(emulator_url),
        **table_env(),
        c.ENV_MODEL_SOURCE: str(model_dir),
        **batch_variables(queues),
        **(extra or {}),
    }


def batch_variables(queues: BatchQueues) -> dict[str, str]:
    """The bucket and queue variables of the jobs API, the batch workers and the failed-events function."""
    from maas.settings import names as c

    return {
        c.ENV_JOB_BUCKET: LOCAL_JOB_BUCKET,
        c.ENV_CONTINUATION_QUEUE_URL: queues.requests,
        c.ENV_DLQ_URL: queues.failed_events,
        c.ENV_MAX_RECEIVE_COUNT: str(c.DEFAULT_MAX_RECEIVE_COUNT),
        c.ENV_DEAD_LETTERS_URL: queues.dead_letters,
    }


def destination_record(event: dict, error: Exception, function_name: str, attempts: int) -> dict:
    """The record Lambda sends to an asynchronous invocation's on-failure destination when every try failed."""
    return {
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": attempts,
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": str(error)[:1000], "errorType": type(error).__name__},
    }


def invoke_async(
    handler: Callable[[dict, object], dict],
    event: dict,
    on_failure: Callable[[dict], None],
    function_name: str = "batch_s3",
    timeout_s: float = 900.0,
    retries: int = ASYNC_RETRY_ATTEMPTS,
) -> dict | None:
    """An asynchronous invocation as Lambda runs it (S3 notifications): the event is retried ``retries`` times after
    a failure, then its destination record goes to ``on_failure``. Returns the handler's result, None on failure."""
    error: Exception | None = None
    for _ in range(1 + retries):
        try:
            return handler(event, LambdaContext(function_name=function_name, timeout_s=timeout_s))
        except Exception as exc:  # what Lambda records as the invocation's function error
            error = exc
    on_failure(destination_record(event, error, function_name, 1 + retries))
    return None


def start_batch_workers(emulator, model_dir, extra_env: dict | None = None) -> Callable[[], None]:
    """For `maas serve`: the bucket and queues of ``create_batch_resources``, the batch_s3, batch_sqs and
    failed_events handlers, and a thread that delivers their events as S3 (asynchronous invocation with retries and
    an on-failure destination) and the SQS event source mappings would. ``extra_env``: more variables for the
    workers (the heavy models' endpoints). Returns the function that stops the thread."""
    import threading

    from maas.tools.local.functions import load_handler

    sqs = emulator.client("sqs")
    queues = create_batch_resources(emulator)
    env = batch_env(emulator.url, model_dir, queues, extra_env)
    batch_s3 = load_handler("batch_s3", env)
    drivers = [
        QueueDriver(sqs, queues.requests, load_handler("batch_sqs", env)),
        QueueDriver(sqs, queues.failed_events, load_handler("failed_events", env), function_name="failed_events"),
    ]
    stop = threading.Event()
    log = __import__("logging").getLogger(__name__)

    def dead_letter(record: dict) -> None:
        sqs.send_message(QueueUrl=queues.failed_events, MessageBody=json.dumps(record))

    def loop() -> None:
        while not stop.is_set():
            busy = False
            try:
                for event in job_events_from_queue(sqs, queues.job_events):
                    busy = True
                    invoke_async(batch_s3, event, dead_letter)
                for driver in drivers:
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
