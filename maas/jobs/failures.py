"""Failed events: what the batch workers gave up on. Each one that concerns a job marks that job failed with the
reason, then it is parked in the dead-letter queue (kept 14 days, alarmed) for operators.

Every failure of the batch workers reaches the failed-events queue, in one of three shapes:
  a Lambda destination record   the S3 worker failed an ObjectCreated event on every try (an exception, a
                                timeout, out of memory): {"requestContext": {"condition", "approximateInvokeCount"},
                                "requestPayload": <the S3 event>, "responsePayload": {"errorMessage", "errorType"}}
  a forwarded message           the SQS worker failed a message on its last receive and forwarded it with the error
                                in its "error" message attribute
  a redriven message            the requests queue moved a message after maxReceiveCount receives that never
                                answered (the worker timed out or crashed): the body alone
A message that is a job's continuation, or an S3 event of job files, names its jobs; an inference request names
none (it is parked as it is).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from maas.jobs.sources import PoisonMessage, parse_message, uploads
from maas.jobs.store import JobStore, ObjectRef, RejectedKey

MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class FailedEvent:
    jobs: tuple[ObjectRef, ...]  # the job files the failed event was about
    reason: str


def _uploads_of(payload: dict) -> tuple[ObjectRef, ...]:
    refs = []
    for upload in uploads(payload):
        try:
            refs.append(upload.ref())
        except RejectedKey:  # never a job's file (the worker rejected it without failing)
            continue
    return tuple(refs)


def failed_event(body: str, error: str | None = None, receives: int | None = None) -> FailedEvent:
    """What a failed-events message is about and why it failed. ``error`` and ``receives``: the message attributes
    the SQS worker adds when it forwards a message (absent on a redriven one)."""
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("requestPayload"), dict):
        context = payload.get("requestContext") or {}
        response = payload.get("responsePayload") or {}
        tries = context.get("approximateInvokeCount", "?")
        why = f"{response.get('errorType') or 'error'}: {response.get('errorMessage') or 'no message'}"
        if not response:
            why = str(context.get("condition") or "no response")  # e.g. EventAgeExceeded: never run
        reason = f"worker_failed: the job's worker gave up after {tries} tries ({why})"
        return FailedEvent(_uploads_of(payload["requestPayload"]), reason[:MAX_REASON_CHARS])
    if isinstance(payload, dict) and payload.get("Records"):  # an S3 event delivered to a queue
        return FailedEvent(_uploads_of(payload), f"worker_failed: {error or 'the job event failed'}"[:MAX_REASON_CHARS])
    try:
        request = parse_message(body)
    except PoisonMessage:
        request = None
    if not isinstance(request, ObjectRef):
        return FailedEvent((), (error or "the message failed")[:MAX_REASON_CHARS])
    tries = f"{receives} receives" if receives else "every receive"
    why = error or "the worker timed out or crashed before it answered"
    return FailedEvent(
        (request,), f"worker_failed: the job's continuation failed on {tries} ({why})"[:MAX_REASON_CHARS]
    )


@dataclass
class FailureHandler:
    """Marks the jobs of failed events failed and parks every event in the dead-letter queue."""

    jobs: JobStore
    sqs: object  # boto3 SQS client
    dead_letter_queue_url: str
    logger: logging.Logger

    def handle(self, body: str, message_id: str, error: str | None = None, receives: int | None = None) -> dict:
        """One failed event: its jobs marked failed (those still awaiting or running), then parked."""
        event = failed_event(body, error, receives)
        marked = 0
        for ref in event.jobs:
            if self.jobs.fail(ref.tenant_id, ref.job_id, ref.version, event.reason):
                marked += 1
                self.logger.warning(
                    "job failed by its worker", extra={"job_id": ref.job_id, "tenant_id": ref.tenant_id}
                )
        attributes = {
            "error": {"DataType": "String", "StringValue": event.reason},
            "source_message_id": {"DataType": "String", "StringValue": message_id},
        }
        if receives:
            attributes["receive_count"] = {"DataType": "Number", "StringValue": str(receives)}
        self.sqs.send_message(QueueUrl=self.dead_letter_queue_url, MessageBody=body, MessageAttributes=attributes)
        return {"jobs": len(event.jobs), "marked_failed": marked}

    def handle_sqs_event(self, event: dict, context) -> dict:
        """A batch from the failed-events queue; a message that cannot be handled comes back (its redrive parks it
        in the dead-letter queue unhandled after a few receives, still alarmed)."""
        from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

        def record_handler(record) -> dict:
            attributes = record.message_attributes

            def attribute(name: str) -> str | None:
                return attributes[name].string_value if name in attributes else None

            receives = attribute("receive_count")
            return self.handle(record.body, record.message_id, attribute("error"), int(receives) if receives else None)

        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False, logger=self.logger)
        response = process_partial_response(event, record_handler, processor, context)
        failures = response.get("batchItemFailures", [])
        return {"statusCode": 207 if failures else 200, "batchItemFailures": failures}


def handler_from_settings(settings, logger: logging.Logger) -> FailureHandler:
    """The failure handler on its jobs table and dead-letter queue."""
    import boto3

    return FailureHandler(
        JobStore(boto3.client("dynamodb"), settings.jobs_table), boto3.client("sqs"), settings.dlq_url, logger
    )
