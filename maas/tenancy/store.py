"""Tenants and API keys in DynamoDB. Keys are stored only as sha256 hashes (maas.tenancy.keys); a key is shown once."""

from __future__ import annotations

import re
import secrets
import time
import uuid
from dataclasses import dataclass

from maas.errors import Forbidden, Unauthorized
from maas.tenancy.keys import KEY_RE, hash_key, new_key

TENANT_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
ACTIVE, SUSPENDED, REVOKED = "active", "suspended", "revoked"


class TenancyError(Exception):
    """A tenant or key operation that cannot be done (unknown tenant, bad plan, ...)."""


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    name: str
    plan: str
    status: str
    created: int
    usage_key: str  # API Gateway usage-plan identifier (not a secret credential of the tenant)

    @classmethod
    def from_item(cls, item: dict) -> Tenant:
        return cls(
            tenant_id=item["tenant_id"]["S"],
            name=item["name"]["S"],
            plan=item["plan"]["S"],
            status=item["status"]["S"],
            created=int(item["created"]["N"]),
            usage_key=item["usage_key"]["S"],
        )


@dataclass(frozen=True)
class KeyRecord:
    prefix: str
    tenant_id: str
    status: str
    created: int
    revoked: int | None = None

    @classmethod
    def from_item(cls, item: dict) -> KeyRecord:
        return cls(
            prefix=item["prefix"]["S"],
            tenant_id=item["tenant_id"]["S"],
            status=item["status"]["S"],
            created=int(item["created"]["N"]),
            revoked=int(item["revoked"]["N"]) if "revoked" in item else None,
        )


@dataclass(frozen=True)
class Caller:
    """Who is calling, as the authorizer established it; handlers take the tenant only from here."""

    tenant_id: str
    plan: str
    key_prefix: str


class UsagePlanKeys:
    """Registers a tenant's usage identifier with API Gateway: an API key whose value is the identifier
    the authorizer returns (usageIdentifierKey), attached to the usage plan of the tenant's plan, so
    throttling applies per tenant. ``plan_ids``: plan name -> usage plan id (stack output UsagePlanIds)."""

    def __init__(self, apigateway_client, plan_ids: dict[str, str]):
        self.client = apigateway_client
        self.plan_ids = plan_ids

    def register(self, tenant: Tenant) -> None:
        if tenant.plan not in self.plan_ids:
            raise TenancyError(f"no usage plan id for plan {tenant.plan!r} (have: {', '.join(self.plan_ids)})")
        key = self.client.create_api_key(
            name=f"maas-{tenant.tenant_id}", value=tenant.usage_key, enabled=True, description="maas usage identifier"
        )
        self.client.create_usage_plan_key(usagePlanId=self.plan_ids[tenant.plan], keyId=key["id"], keyType="API_KEY")


class TenantStore:
    """Tenant and key records. ``client`` is a boto3 DynamoDB client; ``usage_plans`` registers each new
    tenant with API Gateway's usage plans (deployments; the local gateway throttles by plan itself)."""

    def __init__(
        self,
        client,
        tenants_table: str,
        keys_table: str,
        plans: dict | None = None,
        usage_plans: UsagePlanKeys | None = None,
    ):
        self.ddb = client
        self.tenants_table = tenants_table
        self.keys_table = keys_table
        self.plans = plans
        self.usage_plans = usage_plans

    # tenants
    def create_tenant(self, name: str, plan: str, tenant_id: str | None = None) -> Tenant:
        if self.plans is not None and plan not in self.plans:
            raise TenancyError(f"unknown plan {plan!r}; plans: {', '.join(self.plans)}")
        tenant_id = tenant_id or f"t-{uuid.uuid4().hex[:12]}"
        if not TENANT_ID_RE.match(tenant_id):
            raise TenancyError("tenant id must be 2-63 characters of a-z, 0-9 and '-', starting with a letter or digit")
        tenant = Tenant(tenant_id, name, plan, ACTIVE, int(time.time()), secrets.token_urlsafe(24))
        try:
            self.ddb.put_item(
                TableName=self.tenants_table,
                Item={
                    "tenant_id": {"S": tenant.tenant_id},
                    "name": {"S": tenant.name},
                    "plan": {"S": tenant.plan},
                    "status": {"S": tenant.status},
                    "created": {"N": str(tenant.created)},
                    "usage_key": {"S": tenant.usage_key},
                },
                ConditionExpression="attribute_not_exists(tenant_id)",
            )
        except self.ddb.exceptions.ConditionalCheckFailedException:
            raise TenancyError(f"tenant {tenant_id} already exists") from None
        if self.usage_plans is not None:
            try:
                self.usage_plans.register(tenant)
            except Exception as exc:  # no tenant without its usage plan: undo the record
                self.ddb.delete_item(TableName=self.tenants_table, Key={"tenant_id": {"S": tenant_id}})
                raise TenancyError(f"could not register tenant {tenant_id} with API Gateway: {exc}") from exc
        return tenant

    def get_tenant(self, tenant_id: str, consistent: bool = False) -> Tenant | None:
        item = self.ddb.get_item(
            TableName=self.tenants_table, Key={"tenant_id": {"S": tenant_id}}, ConsistentRead=consistent
        ).get("Item")
        return Tenant.from_item(item) if item else None

    def require_tenant(self, tenant_id: str) -> Tenant:
        tenant = self.get_tenant(tenant_id, consistent=True)
        if tenant is None:
            raise TenancyError(f"no tenant {tenant_id}")
        return tenant

    def list_tenants(self) -> list[Tenant]:
        tenants, kwargs = [], {"TableName": self.tenants_table}
        while True:
            page = self.ddb.scan(**kwargs)
            tenants += [Tenant.from_item(i) for i in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return sorted(tenants, key=lambda t: (t.created, t.tenant_id))
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def set_status(self, tenant_id: str, status: str) -> Tenant:
        if status not in (ACTIVE, SUSPENDED):
            raise TenancyError(f"status must be {ACTIVE} or {SUSPENDED}")
        try:
            self.ddb.update_item(
                TableName=self.tenants_table,
                Key={"tenant_id": {"S": tenant_id}},
                UpdateExpression="SET #s = :s",
                ConditionExpression="attribute_exists(tenant_id)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":s": {"S": status}},
            )
        except self.ddb.exceptions.ConditionalCheckFailedException:
            raise TenancyError(f"no tenant {tenant_id}") from None
        return self.require_tenant(tenant_id)

    # keys
    def create_key(self, tenant_id: str) -> tuple[str, KeyRecord]:
        """A new key for a tenant: (the key, shown only now; its stored record)."""
        self.require_tenant(tenant_id)
        key, prefix = new_key()
        record = KeyRecord(prefix, tenant_id, ACTIVE, int(time.time()))
        self.ddb.put_item(
            TableName=self.keys_table,
            Item={
                "key_hash": {"S": hash_key(key)},
                "prefix": {"S": prefix},
                "tenant_id": {"S": tenant_id},
                "status": {"S": ACTIVE},
                "created": {"N": str(record.created)},
            },
            ConditionExpression="attribute_not_exists(key_hash)",
        )
        return key, record

    def _key_items(self, tenant_id: str) -> list[dict]:
        items, kwargs = (
            [],
            {
                "TableName": self.keys_table,
                "IndexName": "by-tenant",
                "KeyConditionExpression": "tenant_id = :t",
                "ExpressionAttributeValues": {":t": {"S": tenant_id}},
            },
        )
        while True:
            page = self.ddb.query(**kwargs)
            items += page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def list_keys(self, tenant_id: str) -> list[KeyRecord]:
        return sorted((KeyRecord.from_item(i) for i in self._key_items(tenant_id)), key=lambda k: k.created)

    def _active_key_item(self, tenant_id: str, prefix: str) -> dict:
        matches = [i for i in self._key_items(tenant_id) if i["prefix"]["S"] == prefix]
        if not matches:
            raise TenancyError(f"tenant {tenant_id} has no key {prefix}")
        if matches[0]["status"]["S"] != ACTIVE:
            raise TenancyError(f"key {prefix} of tenant {tenant_id} is already revoked")
        return matches[0]

    def revoke_key(self, tenant_id: str, prefix: str) -> KeyRecord:
        item = self._active_key_item(tenant_id, prefix)
        try:
            self.ddb.update_item(
                TableName=self.keys_table,
                Key={"key_hash": item["key_hash"]},
                UpdateExpression="SET #s = :r, revoked = :now",
                ConditionExpression="#s = :a",  # the first revocation's time is the one kept
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":r": {"S": REVOKED},
                    ":a": {"S": ACTIVE},
                    ":now": {"N": str(int(time.time()))},
                },
            )
        except self.ddb.exceptions.ConditionalCheckFailedException:
            raise TenancyError(f"key {prefix} of tenant {tenant_id} is already revoked") from None
        return KeyRecord.from_item(
            self.ddb.get_item(TableName=self.keys_table, Key={"key_hash": item["key_hash"]}, ConsistentRead=True)[
                "Item"
            ]
        )

    def rotate_key(self, tenant_id: str, prefix: str) -> tuple[str, KeyRecord]:
        """A new key for the tenant, then the old one revoked (in that order: never a moment with none).
        The old key must exist and be active, or nothing is created."""
        self._active_key_item(tenant_id, prefix)
        key, record = self.create_key(tenant_id)
        self.revoke_key(tenant_id, prefix)
        return key, record

    # authentication
    def authenticate(self, key: str | None) -> tuple[Tenant, KeyRecord]:
        """Resolve a presented key. Unknown, malformed or revoked -> Unauthorized; suspended tenant -> Forbidden."""
        if not key:
            raise Unauthorized("Missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'.")
        if not KEY_RE.match(key):
            raise Unauthorized("Invalid API key.")
        item = self.ddb.get_item(TableName=self.keys_table, Key={"key_hash": {"S": hash_key(key)}}).get("Item")
        if item is None:
            raise Unauthorized("Invalid API key.")
        record = KeyRecord.from_item(item)
        if record.status != ACTIVE:
            raise Unauthorized("This API key has been revoked.", code="revoked_api_key")
        tenant = self.get_tenant(record.tenant_id)
        if tenant is None:
            raise Unauthorized("Invalid API key.")
        if tenant.status != ACTIVE:
            raise Forbidden("This account is suspended; contact support.", code="tenant_suspended")
        return tenant, record
