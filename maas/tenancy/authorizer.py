"""The API Gateway REQUEST authorizer: API key -> tenant, plan and usage identifier.

API Gateway turns an exception whose message is exactly "Unauthorized" into a 401 and a Deny policy
into a 403; both are rendered in the API's error shape by the gateway responses (maas.api.gateway).
"""

from __future__ import annotations

import logging

from maas.errors import Forbidden, Unauthorized
from maas.tenancy.keys import key_from_headers
from maas.tenancy.store import TenantStore


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
    def __init__(self, store: TenantStore, logger: logging.Logger | None = None):
        self.store = store
        self.logger = logger or logging.getLogger(__name__)

    def __call__(self, event: dict, context=None) -> dict:
        """The IAM policy for a REQUEST authorizer event (``context``, the Lambda context, is not needed)."""
        resource = wildcard_resource(event.get("methodArn", "*"))
        key = key_from_headers(event.get("headers"))
        try:
            tenant, record = self.store.authenticate(key)
        except Unauthorized as err:
            # Only the non-secret prefix is ever logged, and only when it parses as ours.
            self.logger.info("authorizer refused", extra={"code": err.code})
            raise AuthorizerUnauthorized() from None
        except Forbidden as err:
            self.logger.info("authorizer denied", extra={"code": err.code})
            return policy("denied", "Deny", resource, {"reason": err.message, "code": err.code})
        self.logger.info("authorized", extra={"tenant_id": tenant.tenant_id, "key_prefix": record.prefix})
        context = {"tenant_id": tenant.tenant_id, "plan": tenant.plan, "key_prefix": record.prefix}
        return policy(tenant.tenant_id, "Allow", resource, context, tenant.usage_key)
