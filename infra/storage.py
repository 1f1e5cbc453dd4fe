"""Stateful storage: S3 buckets with the same hardening everywhere, and their access-log bucket."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.nag import suppress


def private_bucket(scope: Construct, id: str, **props) -> s3.Bucket:
    """A bucket with the hardening every bucket here has: SSE-S3, no public access, owner-enforced, TLS only,
    retained; ``props`` add the rest (versioning, logging, lifecycle)."""
    return s3.Bucket(
        scope,
        id,
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        enforce_ssl=True,
        removal_policy=RemovalPolicy.RETAIN,
        **props,
    )


class AccessLogBucket(Construct):
    """The target of every bucket's server access logs (SSE-S3: log delivery cannot use KMS keys)."""

    def __init__(self, scope: Construct, id: str, *, retention_days: int) -> None:
        super().__init__(scope, id)
        self.bucket = private_bucket(
            self,
            "Bucket",
            versioned=False,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(retention_days))],
        )
        suppress(self.bucket, "S1", "This is the access-log bucket; logging it into itself would loop.")


class SecureBucket(Construct):
    """A private bucket: versioned, SSE-S3 encrypted, public access blocked, TLS only, access-logged, retained."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        access_logs: s3.IBucket,
        log_prefix: str,
        lifecycle_rules: list[s3.LifecycleRule] | None = None,
    ) -> None:
        super().__init__(scope, id)
        self.bucket = private_bucket(
            self,
            "Bucket",
            versioned=True,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix=log_prefix,
            lifecycle_rules=[
                s3.LifecycleRule(noncurrent_version_expiration=Duration.days(30)),
                s3.LifecycleRule(abort_incomplete_multipart_upload_after=Duration.days(1)),
                *(lifecycle_rules or []),
            ],
        )
