"""DynamoDB table definitions, defined once: the runtime, the local emulator (moto), the CDK app and
the tests all build or address tables from these specs.

Tenants      pk tenant_id                      name, plan, status (active|suspended), created, usage_key
ApiKeys      pk key_hash (sha256 of the key)   tenant_id, prefix, status (active|revoked), created, revoked
             GSI by-tenant: tenant_id / prefix
Usage        pk, sk (single-table for metering; its stream feeds the aggregator: maas.metering.store)
             EVENT#<request id> / EVENT            one billable call (written once: conditional put)
             FAIL#<request id> / FAIL              one failed request (not billed)
             TENANT#<tenant> / QUOTA#<yyyy-mm>       leased, g#<window>, u#<window> (quota leases)
             TENANT#<tenant> / MONTH#<yyyy-mm>       consumed and, per model@version, units#m, requests#m,
                                                     compute_ms#m (written by the aggregator only)
             TENANT#<tenant> / DAY#<yyyy-mm-dd>      per model@version: units#m, requests#m, compute_ms#m
             TENANT#<tenant> / ERRORS#<yyyy-mm-dd>   status_4xx, status_5xx (failed requests, not billed)
             SHARD#<stream shard> / CHECKPOINT       the aggregator's last applied sequence number
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Index:
    name: str
    partition_key: str
    sort_key: str | None = None


@dataclass(frozen=True)
class TableSpec:
    logical_name: str  # CDK construct id; the physical name is generated
    env_var: str  # the variable through which functions learn the physical name
    local_name: str  # the table's name in the local emulator
    partition_key: str
    sort_key: str | None = None
    indexes: tuple[Index, ...] = field(default_factory=tuple)
    ttl_attribute: str | None = None
    stream: bool = False  # a NEW_IMAGE stream (the usage table's feeds the aggregator)


TENANTS = TableSpec("Tenants", "MAAS_TENANTS_TABLE", "maas-tenants", partition_key="tenant_id")
API_KEYS = TableSpec(
    "ApiKeys",
    "MAAS_API_KEYS_TABLE",
    "maas-api-keys",
    partition_key="key_hash",
    indexes=(Index("by-tenant", "tenant_id", "prefix"),),
)
USAGE = TableSpec(
    "Usage",
    "MAAS_USAGE_TABLE",
    "maas-usage",
    partition_key="pk",
    sort_key="sk",
    stream=True,
)
# Batch jobs (maas.jobs.store): one item per job, keyed by its tenant so a caller can address only its own jobs.
JOBS = TableSpec("Jobs", "MAAS_JOBS_TABLE", "maas-jobs", partition_key="tenant_id", sort_key="job_id")
ALL_TABLES = (TENANTS, API_KEYS, USAGE, JOBS)
# Every key attribute is a string.
KEY_TYPE = "S"


def create_table_kwargs(spec: TableSpec, name: str | None = None) -> dict:
    """boto3 `create_table` arguments for a spec (on-demand billing), used by the local emulator and tests."""
    attrs = {spec.partition_key} | ({spec.sort_key} if spec.sort_key else set())
    key_schema = [{"AttributeName": spec.partition_key, "KeyType": "HASH"}]
    if spec.sort_key:
        key_schema.append({"AttributeName": spec.sort_key, "KeyType": "RANGE"})
    kwargs: dict = {
        "TableName": name or spec.local_name,
        "KeySchema": key_schema,
        "BillingMode": "PAY_PER_REQUEST",
    }
    gsis = []
    for index in spec.indexes:
        attrs |= {index.partition_key} | ({index.sort_key} if index.sort_key else set())
        schema = [{"AttributeName": index.partition_key, "KeyType": "HASH"}]
        if index.sort_key:
            schema.append({"AttributeName": index.sort_key, "KeyType": "RANGE"})
        gsis.append({"IndexName": index.name, "KeySchema": schema, "Projection": {"ProjectionType": "ALL"}})
    if gsis:
        kwargs["GlobalSecondaryIndexes"] = gsis
    if spec.stream:
        kwargs["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    kwargs["AttributeDefinitions"] = [{"AttributeName": a, "AttributeType": KEY_TYPE} for a in sorted(attrs)]
    return kwargs
