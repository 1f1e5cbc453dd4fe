"""The REST authorizer decides from exactly the header API Gateway caches its verdict on (Authorization)."""

from __future__ import annotations

import itertools

import pytest

from maas.errors import Unauthorized
from maas.tenancy.authorizer import Authorizer, AuthorizerUnauthorized, credential
from tests.unit.tenancy.fake_tenancy import KEY_A, KEY_B, FakeStore

ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/POST/v1/embeddings"
AUTHORIZATIONS = [f"Bearer {KEY_A}", f"bearer  {KEY_B}", "Basic dXNlcjpwYXNz", "Bearer", "Bearer sk-not-ours", KEY_A]
API_KEYS = [None, KEY_A, KEY_B, "garbage"]


def verdict(authorizer: Authorizer, headers: dict) -> tuple:
    """What API Gateway would cache: (effect, principal, context) or 401."""
    try:
        result = authorizer({"methodArn": ARN, "headers": headers})
    except AuthorizerUnauthorized:
        return ("401",)
    context = tuple(sorted(result["context"].items()))
    return (result["policyDocument"]["Statement"][0]["Effect"], result["principalId"], context)


@pytest.mark.parametrize("authorization", AUTHORIZATIONS)
def test_verdict_is_a_function_of_the_authorization_header_alone(authorization):
    # GIVEN one Authorization value sent beside every possible x-api-key (another tenant's, garbage, none)
    authorizer = Authorizer(FakeStore())
    # WHEN the authorizer judges each request
    requests = [{"Authorization": authorization, **({"x-api-key": k} if k else {})} for k in API_KEYS]
    verdicts = {verdict(authorizer, headers) for headers in requests}
    # THEN every request gets the same verdict: a cached verdict can never belong to another credential
    assert len(verdicts) == 1


def test_a_cache_keyed_on_authorization_never_serves_another_callers_verdict():
    # GIVEN a gateway-style cache keyed on the Authorization value, filled in every order of requests
    requests = [{"Authorization": a, **({"x-api-key": k} if k else {})} for a in AUTHORIZATIONS for k in API_KEYS]
    for order in (requests, list(reversed(requests)), requests[1::2] + requests[::2]):
        authorizer, cache = Authorizer(FakeStore()), {}
        for headers in order:
            cached = cache.setdefault(headers["Authorization"], verdict(authorizer, headers))
            # THEN what the cache answers equals what the authorizer decides for this very request
            assert cached == verdict(authorizer, headers)


def test_bearer_authorization_resolves_its_own_key_even_beside_another_x_api_key():
    assert verdict(Authorizer(FakeStore()), {"Authorization": f"Bearer {KEY_A}", "x-api-key": KEY_B})[1] == "tenant-a"


@pytest.mark.parametrize("authorization", ["Basic dXNlcjpwYXNz", "Bearer", "Token " + KEY_B, KEY_B])
def test_non_bearer_authorization_is_refused_and_never_falls_back_to_x_api_key(authorization):
    store = FakeStore()
    assert verdict(Authorizer(store), {"Authorization": authorization, "x-api-key": KEY_B}) == ("401",)
    assert store.calls == []  # refused before any lookup
    with pytest.raises(Unauthorized) as err:
        credential({"authorization": authorization})
    assert err.value.status == 401 and err.value.code == "invalid_authorization_header"


def test_x_api_key_alone_is_judged_when_no_authorization_is_sent():
    # (Behind the cached REST authorizer such a request never reaches it: the gateway answers 401 first.)
    for name, value in itertools.product(("x-api-key", "X-Api-Key"), (KEY_B, f" {KEY_B} ")):
        assert credential({name: value}) == KEY_B
    assert credential({}) is None and credential(None) is None
    assert verdict(Authorizer(FakeStore()), {"x-api-key": KEY_B})[1] == "tenant-b"
