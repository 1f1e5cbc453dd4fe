"""The in-function key check of the function URL front door: exact-credential cache, TTL, refusals, event shapes."""

from __future__ import annotations

import base64
import json

import pytest

from maas.tenancy import frontdoor
from maas.tenancy.frontdoor import FrontDoor, is_function_url_event, to_rest_event, to_url_response
from tests.unit.tenancy.fake_tenancy import KEY_A, KEY_B, FakeStore


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def url_event(headers=None, *, method="POST", path="/v1/embeddings", query="", body='{"input":"hi"}', b64=False):
    """A Lambda function URL event (payload format 2.0) as the service sends it."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "cookies": ["a=1", "b=2"],
        "headers": {"content-type": "application/json", "host": "abc.lambda-url.us-east-1.on.aws", **(headers or {})},
        "queryStringParameters": None,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "abc",
            "domainName": "abc.lambda-url.us-east-1.on.aws",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "t",
            },
            "requestId": "req-1",
            "routeKey": "$default",
            "stage": "$default",
            "time": "05/Dec/2026:10:00:00 +0000",
            "timeEpoch": 1796508800000,
        },
        "body": base64.b64encode(body.encode()).decode() if b64 else body,
        "isBase64Encoded": b64,
    }


class Handler:
    """The function's own handler: records the REST events it gets, answers like the resolver does."""

    def __init__(self):
        self.events = []

    def __call__(self, event, context):
        self.events.append(event)
        return {
            "statusCode": 200,
            "multiValueHeaders": {"Content-Type": ["application/json"], "Set-Cookie": ["s=1"], "X-Quota": ["1", "2"]},
            "body": json.dumps(event["requestContext"]["authorizer"]),
            "isBase64Encoded": False,
        }


@pytest.fixture
def door():
    store, clock = FakeStore(), Clock()
    return FrontDoor(store, ttl_s=60, clock=clock), store, clock


def assert_refused(response, status, error_type, code):
    """The one error shape, with its status, from the function URL."""
    assert response["statusCode"] == status
    assert response["headers"]["Content-Type"] == "application/json"
    body = json.loads(response["body"])
    assert set(body) == {"error"} and set(body["error"]) >= {"message", "type", "code"}
    assert (body["error"]["type"], body["error"]["code"]) == (error_type, code)


def test_each_credential_gets_its_own_verdict_and_the_cache_is_keyed_on_it(door):
    fd, store, _ = door
    handler = Handler()
    # GIVEN two tenants' keys, interleaved, over both key headers
    for headers, tenant in [
        ({"authorization": f"Bearer {KEY_A}"}, "tenant-a"),
        ({"x-api-key": KEY_B}, "tenant-b"),
        ({"authorization": f"Bearer {KEY_A}", "x-api-key": KEY_B}, "tenant-a"),
        ({"authorization": f"Bearer {KEY_B}", "x-api-key": KEY_A}, "tenant-b"),
        ({"x-api-key": KEY_A}, "tenant-a"),
    ]:
        # WHEN each request passes the front door
        response = fd.handle(url_event(headers), None, handler)
        # THEN the handler sees the tenant of exactly the credential that was judged
        assert json.loads(response["body"])["tenant_id"] == tenant
    # and each credential was looked up once: the cached verdicts are reused only for the same credential
    assert sorted(store.calls) == [KEY_A, KEY_B]


def test_a_non_bearer_authorization_is_refused_and_never_resolved_through_x_api_key(door):
    fd, store, _ = door
    handler = Handler()
    response = fd.handle(url_event({"authorization": "Basic dXNlcjpwYXNz", "x-api-key": KEY_A}), None, handler)
    assert_refused(response, 401, "authentication_error", "invalid_authorization_header")
    assert handler.events == [] and store.calls == []


def test_missing_and_unknown_keys_are_401_in_the_error_shape(door):
    fd, _, _ = door
    handler = Handler()
    assert_refused(fd.handle(url_event(), None, handler), 401, "authentication_error", "invalid_api_key")
    unknown = {"authorization": "Bearer maas_CCCCCCCC_" + "c" * 32}
    assert_refused(fd.handle(url_event(unknown), None, handler), 401, "authentication_error", "invalid_api_key")
    assert handler.events == []


def test_a_suspended_tenant_is_403_in_the_error_shape(door):
    fd, store, _ = door
    store.suspended.add("tenant-a")
    response = fd.handle(url_event({"x-api-key": KEY_A}), None, Handler())
    assert_refused(response, 403, "permission_error", "tenant_suspended")


def test_a_revoked_key_is_served_until_the_ttl_and_refused_after_it(door):
    fd, store, clock = door
    handler = Handler()
    headers = {"authorization": f"Bearer {KEY_A}"}
    assert fd.handle(url_event(headers), None, handler)["statusCode"] == 200
    # GIVEN the key is revoked while its verdict is cached
    store.revoke(KEY_A)
    clock.now += 59
    assert fd.handle(url_event(headers), None, handler)["statusCode"] == 200  # the documented TTL window
    # WHEN the TTL has passed
    clock.now += 2
    # THEN it is looked up again and refused; the other tenant's key is untouched
    assert_refused(fd.handle(url_event(headers), None, handler), 401, "authentication_error", "revoked_api_key")
    assert fd.handle(url_event({"x-api-key": KEY_B}), None, handler)["statusCode"] == 200


def test_the_cache_is_bounded():
    store, clock = FakeStore(), Clock()
    fd = FrontDoor(store, ttl_s=60, clock=clock, max_entries=3)
    for i in range(10):
        fd.verdict({"x-api-key": f"maas_{i:08d}_" + "z" * 32})
    assert len(fd._verdicts) <= 3


def test_a_store_failure_is_a_retryable_refusal_not_a_handler_run():
    class Broken(FakeStore):
        def authenticate(self, key):
            raise ConnectionError("DynamoDB unreachable")

    handler = Handler()
    response = FrontDoor(Broken()).handle(url_event({"x-api-key": KEY_A}), None, handler)
    assert_refused(response, 503, "service_unavailable_error", "authorizer_error")
    assert handler.events == []


def test_the_url_event_becomes_the_rest_event_the_handlers_read(door):
    fd, _, _ = door
    handler = Handler()
    event = url_event({"authorization": f"Bearer {KEY_A}"}, query="model=m&x=1&x=2", body="raw", b64=True)
    response = fd.handle(event, None, handler)
    rest = handler.events[0]
    assert (rest["httpMethod"], rest["path"], rest["resource"]) == ("POST", "/v1/embeddings", "/v1/embeddings")
    assert rest["queryStringParameters"] == {"model": "m", "x": "2"}
    assert rest["multiValueQueryStringParameters"] == {"model": ["m"], "x": ["1", "2"]}
    assert rest["isBase64Encoded"] is True and base64.b64decode(rest["body"]) == b"raw"
    assert rest["headers"]["cookie"] == "a=1; b=2"
    assert rest["multiValueHeaders"]["content-type"] == ["application/json"]
    assert rest["requestContext"]["requestId"] == "req-1"
    assert rest["requestContext"]["identity"]["sourceIp"] == "203.0.113.7"
    assert rest["requestContext"]["authorizer"] == {
        "principalId": "tenant-a",
        "tenant_id": "tenant-a",
        "plan": "pro",
        "key_prefix": "maas_AAAAAAAA",
    }
    # and the handler's REST response becomes a function URL response (no multiValueHeaders in v2)
    assert response["headers"] == {"Content-Type": "application/json", "X-Quota": "1, 2"}
    assert response["cookies"] == ["s=1"] and "multiValueHeaders" not in response


def test_an_authorizer_context_in_the_url_event_is_never_trusted(door):
    fd, _, _ = door
    handler = Handler()
    event = url_event({"x-api-key": KEY_B})
    event["requestContext"]["authorizer"] = {"tenant_id": "tenant-a", "plan": "pro", "key_prefix": "maas_AAAAAAAA"}
    fd.handle(event, None, handler)
    assert handler.events[0]["requestContext"]["authorizer"]["tenant_id"] == "tenant-b"


def test_entry_point_passes_other_events_through_and_checks_url_events(monkeypatch):
    handler = Handler()
    store = FakeStore()
    monkeypatch.setattr(frontdoor, "_state", {"handler": handler, "door": FrontDoor(store)})
    rest_event = {"httpMethod": "GET", "path": "/v1/models", "requestContext": {"authorizer": {"tenant_id": "t"}}}
    assert frontdoor.lambda_handler(rest_event, None)["statusCode"] == 200
    assert handler.events == [rest_event] and store.calls == []
    assert frontdoor.lambda_handler(url_event(), None)["statusCode"] == 401
    assert is_function_url_event(url_event()) and not is_function_url_event(rest_event)


def test_non_proxy_results_pass_through_unchanged():
    assert to_url_response(None) is None
    assert to_rest_event(url_event(method="GET", body=None), {})["body"] is None
