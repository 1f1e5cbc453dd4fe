"""The REQUEST authorizer and the local gateway: keys, revocation, suspension, throttling, isolation."""

from __future__ import annotations

import copy
import uuid

import pytest
import requests

from maas.errors import Forbidden, Unauthorized
from maas.tables import API_KEYS, TENANTS
from maas.tenancy.keys import hash_key
from maas.tenancy.plans import default_plans
from maas.tenancy.store import TenantStore
from maas.tools.local.emulator import aws_env, table_env
from maas.tools.local.functions import LambdaContext, load_handler
from tests.conftest import load_event


@pytest.fixture(scope="module")
def store(aws):
    return TenantStore(aws.client("dynamodb"), TENANTS.local_name, API_KEYS.local_name, default_plans())


@pytest.fixture(scope="module")
def authorizer(aws):
    return load_handler("authorizer", {**aws_env(aws.url), **table_env()})


def _request(key: str | None, header: str = "Authorization") -> dict:
    event = copy.deepcopy(load_event("authorizer-request.json"))
    event["headers"].pop("Authorization")
    if key is not None:
        event["headers"][header] = f"Bearer {key}" if header == "Authorization" else key
    return event


def _tenant(store, plan="pro"):
    tenant = store.create_tenant("Acme", plan, tenant_id=f"acme-{uuid.uuid4().hex[:8]}")
    key, record = store.create_key(tenant.tenant_id)
    return tenant, key, record


def test_keys_are_stored_only_as_hashes(store, aws):
    tenant, key, record = _tenant(store)
    items = aws.client("dynamodb").scan(TableName=API_KEYS.local_name)["Items"]
    mine = [i for i in items if i["tenant_id"]["S"] == tenant.tenant_id]
    assert [i["key_hash"]["S"] for i in mine] == [hash_key(key)]
    assert key not in str(items)
    assert record.prefix == key.rsplit("_", 1)[0] and len(record.prefix) == len("maas_") + 8


def test_valid_key_allows_every_route_with_tenant_plan_and_usage_identifier(store, authorizer):
    tenant, key, record = _tenant(store)
    for header in ("Authorization", "x-api-key"):
        result = authorizer(_request(key, header), LambdaContext())
        statement = result["policyDocument"]["Statement"][0]
        assert statement["Effect"] == "Allow"
        assert statement["Resource"] == "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/*/*"
        assert result["context"] == {"tenant_id": tenant.tenant_id, "plan": "pro", "key_prefix": record.prefix}
        assert result["usageIdentifierKey"] == tenant.usage_key


@pytest.mark.parametrize("key", [None, "", "not-a-key", "maas_AAAAAAAA_" + "B" * 32])
def test_missing_malformed_or_unknown_key_is_401(authorizer, key):
    with pytest.raises(Exception, match="^Unauthorized$"):
        authorizer(_request(key), LambdaContext())


def test_revoked_key_stops_working_and_rotation_keeps_service(store, authorizer):
    tenant, key, record = _tenant(store)
    new_key, new_record = store.rotate_key(tenant.tenant_id, record.prefix)
    # A revoked key is a Deny carrying its code (a 401 could carry none: API Gateway renders the Deny's context)
    denied = authorizer(_request(key), LambdaContext())
    assert denied["policyDocument"]["Statement"][0]["Effect"] == "Deny"
    assert denied["context"] == {
        "code": "revoked_api_key",
        "type": "authentication_error",
        "reason": "This API key has been revoked.",
    }
    assert authorizer(_request(new_key), LambdaContext())["context"]["key_prefix"] == new_record.prefix
    statuses = {k.prefix: k.status for k in store.list_keys(tenant.tenant_id)}
    assert statuses == {record.prefix: "revoked", new_record.prefix: "active"}


def test_suspended_tenant_is_denied_with_a_reason_and_resume_restores(store, authorizer):
    tenant, key, _ = _tenant(store)
    store.set_status(tenant.tenant_id, "suspended")
    result = authorizer(_request(key), LambdaContext())
    assert result["policyDocument"]["Statement"][0]["Effect"] == "Deny"
    assert "suspended" in result["context"]["reason"]
    assert (result["context"]["code"], result["context"]["type"]) == ("tenant_suspended", "permission_error")
    store.set_status(tenant.tenant_id, "active")
    assert authorizer(_request(key), LambdaContext())["policyDocument"]["Statement"][0]["Effect"] == "Allow"


def test_keys_never_appear_in_logs(store, authorizer, caplog):
    tenant, key, _ = _tenant(store)
    authorizer(_request(key), LambdaContext())
    with pytest.raises(Exception, match="Unauthorized"):
        wrong = key[:-1] + ("y" if key.endswith("x") else "x")  # always another key than the real one
        authorizer(_request(wrong), LambdaContext())
    secret = key.rsplit("_", 1)[1]
    assert caplog.records and all(secret not in str(r.__dict__) for r in caplog.records)


# --- through the local gateway over HTTP ----------------------------------------------------------------


@pytest.fixture(scope="module")
def served(model_dir):
    from maas.tools.local.server import LocalApi, LocalGateway, function_env, start

    # Cache TTL 0 so revocation is visible at once (the deployed TTL is maas.settings.names.AUTHORIZER_CACHE_TTL_S).
    # The gateway's free plan here refills one request per 1000 s (burst 3), so the throttling test does not
    # depend on how fast this machine answers; the functions bill with the real plans from plans.toml.
    slow = default_plans()["free"].model_copy(update={"rate_limit": 0.001, "burst_limit": 3})
    plans = {**default_plans(), "free": slow}
    api = LocalApi(env=function_env(model_dir), gateway=LocalGateway(cache_ttl_s=0, plans=plans))
    running = start(port=0, api=api)
    from maas.tools.local.emulator import AwsEmulator

    emulator = AwsEmulator()
    emulator.url = running.moto_url
    yield running, TenantStore(emulator.client("dynamodb"), TENANTS.local_name, API_KEYS.local_name)
    running.stop()


def _post(url, key=None, headers=None):
    h = dict(headers or {})
    if key:
        h["Authorization"] = f"Bearer {key}"
    return requests.post(f"{url}/v1/embeddings", json={"input": "hello"}, headers=h, timeout=30)


def test_http_auth_errors_use_the_error_shape(served):
    running, store = served
    r = _post(running.base_url)
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    tenant, key, record = _tenant(store)
    assert _post(running.base_url, key).status_code == 200
    store.set_status(tenant.tenant_id, "suspended")
    # The gateway keeps the authorizer's type, code and message (maas.api.gateway renders its Deny context)
    suspended = Forbidden("This account is suspended; contact support.", code="tenant_suspended")
    assert (r := _post(running.base_url, key)).status_code == 403 and r.json() == suspended.body()
    store.set_status(tenant.tenant_id, "active")
    store.revoke_key(tenant.tenant_id, record.prefix)
    revoked = Unauthorized("This API key has been revoked.", code="revoked_api_key")
    assert (r := _post(running.base_url, key)).status_code == 403 and r.json() == revoked.body()
    r = _post(running.base_url, "maas_AAAAAAAA_" + "B" * 32)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


def test_a_plan_is_throttled_at_its_burst(served):
    running, store = served
    _, key, _ = _tenant(store, plan="free")
    codes = [_post(running.base_url, key).status_code for _ in range(6)]
    assert codes == [200, 200, 200, 429, 429, 429]
    r = _post(running.base_url, key)
    assert r.status_code == 429 and r.json()["error"]["type"] == "rate_limit_error"


def test_tenant_smuggling_headers_do_not_change_the_tenant(served):
    running, store = served
    tenant, key, _ = _tenant(store)
    victim, _, _ = _tenant(store)
    r = _post(running.base_url, key, headers={"X-Tenant-Id": victim.tenant_id, "x-api-key": "maas_x"})
    assert r.status_code == 200


def test_rotate_and_revoke_refuse_unknown_or_revoked_keys_without_side_effects(store):
    tenant, key, record = _tenant(store)
    from maas.tenancy.store import TenancyError

    with pytest.raises(TenancyError, match="has no key maas_nope0000"):
        store.rotate_key(tenant.tenant_id, "maas_nope0000")
    assert len(store.list_keys(tenant.tenant_id)) == 1  # no orphan key was created
    first = store.revoke_key(tenant.tenant_id, record.prefix)
    with pytest.raises(TenancyError, match="already revoked"):
        store.revoke_key(tenant.tenant_id, record.prefix)
    with pytest.raises(TenancyError, match="already revoked"):
        store.rotate_key(tenant.tenant_id, record.prefix)
    [kept] = store.list_keys(tenant.tenant_id)
    assert kept.revoked == first.revoked
