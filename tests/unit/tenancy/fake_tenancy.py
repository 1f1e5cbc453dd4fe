"""A TenantStore stand-in for the authorizer and front-door tests: keys -> tenants in memory, calls counted."""

from __future__ import annotations

from maas.errors import Forbidden, Unauthorized
from maas.tenancy.store import ACTIVE, REVOKED, KeyRecord, Tenant

KEY_A = "maas_AAAAAAAA_" + "a" * 32
KEY_B = "maas_BBBBBBBB_" + "b" * 32


class FakeStore:
    def __init__(self):
        self.calls: list[str | None] = []
        self.keys = {KEY_A: ("tenant-a", ACTIVE), KEY_B: ("tenant-b", ACTIVE)}
        self.suspended: set[str] = set()

    def authenticate(self, key):
        self.calls.append(key)
        if not key:
            raise Unauthorized("Missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'.")
        if key not in self.keys:
            raise Unauthorized("Invalid API key.")
        tenant_id, status = self.keys[key]
        if status != ACTIVE:
            raise Unauthorized("This API key has been revoked.", code="revoked_api_key")
        if tenant_id in self.suspended:
            raise Forbidden("This account is suspended; contact support.", code="tenant_suspended")
        tenant = Tenant(tenant_id, tenant_id, "pro", ACTIVE, 0, f"usage-{tenant_id}")
        return tenant, KeyRecord(key.rsplit("_", 1)[0], tenant_id, status, 0)

    def revoke(self, key):
        self.keys[key] = (self.keys[key][0], REVOKED)
