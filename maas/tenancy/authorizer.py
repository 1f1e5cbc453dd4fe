"""The API Gateway REQUEST authorizer: API key -> tenant, plan and usage identifier.

API Gateway turns an exception whose message is exactly "Unauthorized" into a 401 and a Deny policy
into a 403; both are rendered in the API's error shape by the gateway responses (maas.api.gateway). A 401 cannot
carry anything from the authorizer, a Deny's context can: so a missing or unknown key is the 401 invalid_api_key,
and a key that is refused for a reason (revoked_api_key, tenant_suspended) is a Deny whose context holds the
error's type, code and message, rendered as they are.

The gateway caches a verdict keyed on the `Authorization` header (its identity source), so the verdict is a
function of that header alone whenever it is present: see `credential`.
"""

from __future__ import annotations

import logging

from maas.errors import ApiError, Forbidden, Unauthorized
from maas.tenancy.keys import credential
from maas.tenancy.store import KeyRecord, Tenant, TenantStore


def caller_context(tenant: Tenant, record: KeyRecord) -> dict[str, str]:
    """What handlers read from requestContext.authorizer (maas.metering.charge.caller_from_event)."""
    return {"tenant_id": tenant.tenant_id, "plan": tenant.plan, "key_prefix": record.prefix}


# Unauthorized codes for a key that is ours but refused: answered as a Deny, so that the client sees the code.
KNOWN_KEY_REFUSALS = frozenset({"revoked_api_key"})


def refusal_context(err: ApiError) -> dict[str, str]:
    """A Deny's context: what the gateway's ACCESS_DENIED response renders (maas.api.gateway), so that the client
    gets the authorizer's own type, code and message."""
    return {"reason": err.message, "code": err.code, "type": err.type}


class AuthorizerUnauthorized(Exception):
    """Raised with the exact message API Gateway maps to 401."""

    def __init__(self):
        super().__init__("Unauthorized")


def wildcard_resource(method_arn: str) -> str:
    """arn:...:apiId/stage/METHOD/path -> arn:...:apiId/stage/*/*: one cached policy covers every route."""
    arn, _, rest = method_arn.partition(":execute-api:")
    if not rest:
        return method_arn
    parts = rest.split("/")
    return f"{arn}:execute-api:{'/'.join(parts[:2])}/*/*"


def policy(principal: str, effect: str, resource: str, context: dict, usage_key: str | None = None) -> dict:
    """An authorizer result: an IAM policy for `resource`, the context handlers read, the usage-plan key."""
    result = {
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
        },
        "context": context,
    }
    if usage_key:
        result["usageIdentifierKey"] = usage_key
    return result


class Authorizer:
    """Resolves the request's credential (see `credential`) to an Allow policy with the caller's context,
    a Deny for a suspended tenant, or AuthorizerUnauthorized (401)."""

    def __init__(self, store: TenantStore, logger: logging.Logger | None = None):
        self.store = store
        self.logger = logger or logging.getLogger(__name__)

    def __call__(self, event: dict, context=None) -> dict:
        """The IAM policy for a REQUEST authorizer event (``context``, the Lambda context, is not needed)."""
        resource = wildcard_resource(event.get("methodArn", "*"))
        try:
            tenant, record = self.store.authenticate(credential(event.get("headers")))
        except Unauthorized as err:
            # Only the non-secret prefix is ever logged, and only when it parses as ours.
            self.logger.info("authorizer refused", extra={"code": err.code})
            if err.code not in KNOWN_KEY_REFUSALS:  # no key, a malformed one, or not one of ours: API Gateway's 401
                raise AuthorizerUnauthorized() from None
            # A key we know and refuse (revoked): only a Deny reaches the client with our code (a 403).
            return policy("denied", "Deny", resource, refusal_context(err))
        except Forbidden as err:
            self.logger.info("authorizer denied", extra={"code": err.code})
            return policy("denied", "Deny", resource, refusal_context(err))
        # DEBUG: an allowed call is already in the access log with its tenant; an INFO line here is paid per verdict.
        self.logger.debug("authorized", extra={"tenant_id": tenant.tenant_id, "key_prefix": record.prefix})
        return policy(tenant.tenant_id, "Allow", resource, caller_context(tenant, record), tenant.usage_key)
