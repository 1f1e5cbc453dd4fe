"""Events: S3 job files (ObjectCreated under jobs/) and SQS requests, each to its worker, failures isolated."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import Config
from infra.functions import ServiceFunction
from infra.nag import suppress
from maas.settings.names import DEFAULT_RESULTS_PREFIX as RESULTS_PREFIX  # outside jobs/: results never trigger a job
from maas.settings.names import (
    ENV_CONTINUATION_QUEUE_URL,
    ENV_DEAD_LETTERS_URL,
    ENV_DLQ_URL,
    ENV_JOB_BUCKET,
    ENV_MAX_RECEIVE_COUNT,
    ENV_RESULTS_PREFIX,
    JOBS_PREFIX,  # jobs/{tenant}/... : a tenant's input files
)


class BatchJobs(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: Config,
        job_bucket: s3.IBucket,
        s3_worker: ServiceFunction,
        sqs_worker: ServiceFunction,
        failure_handler: ServiceFunction,
    ) -> None:
        super().__init__(scope, id)
        # Every failure of the batch workers goes to the failed-events queue first: the failure handler marks the
        # job it concerns failed, with the reason (else the job item would say running forever), then parks the
        # event in the dead-letter queue, where it stays 14 days and the DLQ alarm sees it.
        self.dead_letters = self._queue("DeadLetters", retention_period=Duration.days(14))
        suppress(
            self.dead_letters,
            "SQS3",
            "This queue is the dead-letter queue of the batch workers (through the failed-events handler) and of "
            "the failed-events queue itself.",
        )
        self.failed_events = self._queue(
            "FailedEvents",
            retention_period=Duration.days(14),
            visibility_timeout=Duration.seconds(6 * config.failed_events.timeout_s),
            # The handler failing too: the event is parked as it is (still alarmed, the job still visible as stalled).
            # A message redriven from the requests queue may keep its receive count: this queue allows that many more.
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letters, max_receive_count=2 * config.sqs_max_receive_count
            ),
        )
        failure_handler.alias.add_event_source(
            sources.SqsEventSource(self.failed_events, batch_size=10, report_batch_item_failures=True)
        )
        failure_handler.function.add_environment(ENV_DEAD_LETTERS_URL, self.dead_letters.queue_url)
        self.dead_letters.grant_send_messages(failure_handler.role)
        # Lambda's guidance: visibility timeout at least six times the function timeout.
        self.requests = self._queue(
            "Requests",
            visibility_timeout=Duration.seconds(6 * config.batch_sqs.timeout_s),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.failed_events, max_receive_count=config.sqs_max_receive_count
            ),
        )
        sqs_worker.alias.add_event_source(
            sources.SqsEventSource(
                self.requests,
                batch_size=config.sqs_batch_size,
                max_batching_window=Duration.seconds(1),
                report_batch_item_failures=True,
            )
        )

        job_bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            s3n.LambdaDestination(s3_worker.alias),
            s3.NotificationKeyFilter(prefix=JOBS_PREFIX),
        )
        job_bucket.grant_read(s3_worker.role, f"{JOBS_PREFIX}*")
        job_bucket.grant_put(s3_worker.role, f"{RESULTS_PREFIX}*")
        job_bucket.grant_put(sqs_worker.role, f"{RESULTS_PREFIX}*")
        # S3 invokes asynchronously: after Lambda's retries (an exception, a timeout, out of memory) the failed job
        # event's destination record, with the error, goes to the failed-events queue.
        s3_worker.alias.configure_async_invoke(
            retry_attempts=2, on_failure=destinations.SqsDestination(self.failed_events)
        )
        for worker in (s3_worker, sqs_worker):
            worker.function.add_environment(ENV_JOB_BUCKET, job_bucket.bucket_name)
            worker.function.add_environment(ENV_RESULTS_PREFIX, RESULTS_PREFIX)
            # A job too big for one invocation continues through the requests queue (maas.jobs.worker), from
            # either worker; the SQS worker forwards a message to the DLQ, with its error, on its last receive.
            worker.function.add_environment(ENV_CONTINUATION_QUEUE_URL, self.requests.queue_url)
            self.requests.grant_send_messages(worker.role)
        job_bucket.grant_read(sqs_worker.role, f"{JOBS_PREFIX}*")
        sqs_worker.function.add_environment(ENV_DLQ_URL, self.failed_events.queue_url)
        sqs_worker.function.add_environment(ENV_MAX_RECEIVE_COUNT, str(config.sqs_max_receive_count))
        self.failed_events.grant_send_messages(sqs_worker.role)

    def _queue(self, id: str, **kwargs) -> sqs.Queue:
        """A queue encrypted with SQS-managed keys that refuses requests without TLS."""
        return sqs.Queue(self, id, encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True, **kwargs)
