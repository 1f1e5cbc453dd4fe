"""Tenancy and metering storage: the DynamoDB tables of maas.tables and the usage-export bucket."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.nag import suppress
from infra.storage import SecureBucket
from maas.tables import ALL_TABLES, KEY_TYPE, TableSpec

_ATTRIBUTE_TYPES = {"S": dynamodb.AttributeType.STRING, "N": dynamodb.AttributeType.NUMBER}


def _attribute(name: str) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=name, type=_ATTRIBUTE_TYPES[KEY_TYPE])


class UsageMetering(Construct):
    """One on-demand table per maas.tables spec (keys, indexes, TTL from the spec), PITR on, retained on delete."""

    def __init__(self, scope: Construct, id: str, *, access_logs: s3.IBucket) -> None:
        super().__init__(scope, id)
        self.tables: dict[str, dynamodb.Table] = {spec.logical_name: self._table(spec) for spec in ALL_TABLES}
        self.export_bucket = SecureBucket(
            self, "UsageExports", access_logs=access_logs, log_prefix="usage-exports/"
        ).bucket

    def _table(self, spec: TableSpec) -> dynamodb.Table:
        table = dynamodb.Table(
            self,
            spec.logical_name,
            partition_key=_attribute(spec.partition_key),
            sort_key=_attribute(spec.sort_key) if spec.sort_key else None,
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute=spec.ttl_attribute,
            stream=dynamodb.StreamViewType.NEW_IMAGE if spec.stream else None,
            removal_policy=RemovalPolicy.RETAIN,
        )
        for index in spec.indexes:
            table.add_global_secondary_index(
                index_name=index.name,
                partition_key=_attribute(index.partition_key),
                sort_key=_attribute(index.sort_key) if index.sort_key else None,
                projection_type=dynamodb.ProjectionType.ALL,
            )
        suppress(
            table, "DDB4", "Point-in-time recovery (35 days) is the backup; an AWS Backup plan would duplicate it."
        )
        return table

    def table(self, spec: TableSpec) -> dynamodb.Table:
        return self.tables[spec.logical_name]
