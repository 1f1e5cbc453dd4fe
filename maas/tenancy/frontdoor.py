"""The key check inside the function, for the Lambda function URL front door (auth NONE: no gateway in front).

A function URL sends an HTTP API payload v2 event. `FrontDoor` judges its credential exactly as the REST
authorizer does (`maas.tenancy.keys.credential`, `TenantStore.authenticate`), caches each verdict per
container for `ttl_s` keyed on the sha256 of exactly that credential, and hands the function's own handler
the REST v1 proxy event it already reads, with `requestContext.authorizer` filled as the REST authorizer would
fill it. Refusals answer in the one error shape (401, 403) without running the handler.

`lambda_handler` is the Lambda entry point of such a function (`ENTRY`); it wraps `app.lambda_handler` (`WRAPPED`)
and passes every event that is not a function URL event (the REST API's, event sources') to it unchanged.
"""

from __future__ import annotations

import importlib
import json
import logging
import time
from collections.abc import Callable
from urllib.parse import parse_qsl

from maas.errors import ApiError, ServiceUnavailable
from maas.settings.names import AUTHORIZER_CACHE_TTL_S
from maas.tenancy.authorizer import caller_context
from maas.tenancy.keys import credential
from maas.tenancy.store import TenantStore, hash_key

ENTRY = "maas.tenancy.frontdoor.lambda_handler"
WRAPPED = "app.lambda_handler"  # infra.assets.HANDLER: the function's own handler
MAX_ENTRIES = 10_000  # verdicts kept per container; beyond it the oldest go first
STAGE = "$default"
JSON = "application/json"

Verdict = dict | ApiError


def is_function_url_event(event) -> bool:
    """True for a payload v2 event (function URL, HTTP API); REST v1 events and event sources are not."""
    return isinstance(event, dict) and event.get("version") == "2.0" and "http" in (event.get("requestContext") or {})


def refusal(err: ApiError) -> dict:
    """A function URL response in the one error shape."""
    return {
        "statusCode": err.status,
        "headers": {"Content-Type": JSON, **err.headers},
        "body": json.dumps(err.body(), separators=(",", ":")),
        "isBase64Encoded": False,
    }


def to_rest_event(event: dict, authorizer: dict) -> dict:
    """The REST v1 proxy event the handlers read, from a payload v2 event.

    What cannot be carried over: `resource` is the concrete path (a URL has no route templates; the handlers
    match on the path), `pathParameters` is None (the resolver extracts them), and a header sent several times
    arrives comma-joined in one value (as v2 delivers it).
    """
    ctx = event.get("requestContext") or {}
    http = ctx.get("http") or {}
    path = http.get("path") or event.get("rawPath") or "/"
    method = http.get("method") or "GET"
    headers = dict(event.get("headers") or {})
    if event.get("cookies"):
        headers["cookie"] = "; ".join(event["cookies"])
    multi_query: dict[str, list[str]] = {}
    for name, value in parse_qsl(event.get("rawQueryString") or "", keep_blank_values=True):
        multi_query.setdefault(name, []).append(value)
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": {name: values[-1] for name, values in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": path,
            "httpMethod": method,
            "path": path,
            "stage": STAGE,
            "requestId": ctx.get("requestId"),
            "requestTimeEpoch": ctx.get("timeEpoch"),
            "domainName": ctx.get("domainName"),
            "apiId": ctx.get("apiId"),
            "accountId": ctx.get("accountId"),
            "identity": {"sourceIp": http.get("sourceIp"), "userAgent": http.get("userAgent")},
            "authorizer": authorizer,
        },
        "body": event.get("body"),
        "isBase64Encoded": bool(event.get("isBase64Encoded")),
    }


def to_url_response(result):
    """A handler's REST proxy response as a function URL response: no multiValueHeaders in v2 (values are
    comma-joined; Set-Cookie goes to `cookies`)."""
    if not isinstance(result, dict) or "statusCode" not in result:
        return result
    headers = dict(result.get("headers") or {})
    cookies: list[str] = []
    for name, values in (result.get("multiValueHeaders") or {}).items():
        if name.lower() == "set-cookie":
            cookies += [str(v) for v in values]
        else:
            headers[name] = ", ".join(str(v) for v in values)
    response = {
        "statusCode": result["statusCode"],
        "headers": headers,
        "body": result.get("body") or "",
        "isBase64Encoded": bool(result.get("isBase64Encoded")),
    }
    if cookies:
        response["cookies"] = cookies
    return response


class FrontDoor:
    """Credential -> caller context, cached per container for ``ttl_s`` keyed on the credential's sha256.

    A verdict (allowed context, or the refusal) is reused only for the very credential it was decided from; a
    revoked key or suspended tenant is refused at most ``ttl_s`` after the change, as behind the REST authorizer.
    """

    def __init__(
        self,
        store: TenantStore,
        *,
        ttl_s: float = AUTHORIZER_CACHE_TTL_S,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger | None = None,
    ):
        self.store = store
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        self.logger = logger or logging.getLogger(__name__)
        self._verdicts: dict[str, tuple[float, Verdict]] = {}

    def verdict(self, headers: dict | None) -> Verdict:
        """The caller context for these headers' credential, or the ApiError that refuses it."""
        try:
            key = credential(headers)
        except ApiError as err:
            return err
        if key is None:
            return self._decide(None)
        cache_key = hash_key(key)
        now = self.clock()
        hit = self._verdicts.get(cache_key)
        if hit is not None and hit[0] > now:
            return hit[1]
        verdict = self._decide(key)
        if len(self._verdicts) >= self.max_entries:
            self._evict(now)
        self._verdicts[cache_key] = (now + self.ttl_s, verdict)
        return verdict

    def _decide(self, key: str | None) -> Verdict:
        try:
            tenant, record = self.store.authenticate(key)
        except ApiError as err:
            self.logger.info("front door refused", extra={"status": err.status, "code": err.code})
            return err
        return {"principalId": tenant.tenant_id, **caller_context(tenant, record)}

    def _evict(self, now: float) -> None:
        self._verdicts = {k: v for k, v in self._verdicts.items() if v[0] > now}
        while len(self._verdicts) >= self.max_entries:
            self._verdicts.pop(next(iter(self._verdicts)))

    def handle(self, event: dict, context, handler: Callable) -> dict:
        """Judge a function URL event and, if allowed, run ``handler`` on its REST v1 form."""
        try:
            verdict = self.verdict(event.get("headers"))
        except Exception:
            # The tenant tables could not be read: a retryable refusal in the error shape, never the handler.
            self.logger.exception("front door could not check the key")
            return refusal(ServiceUnavailable("Authorization failed; retry.", code="authorizer_error"))
        if isinstance(verdict, ApiError):
            return refusal(verdict)
        return to_url_response(handler(to_rest_event(event, verdict), context))


_state: dict = {}


def _load(spec: str) -> Callable:
    module, _, name = spec.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _front_door() -> FrontDoor:
    import boto3  # only a function behind a function URL reads the tenant tables itself
    from aws_lambda_powertools import Logger

    from maas.settings.functions import AuthorizerSettings
    from maas.settings.names import SERVICE_NAME

    settings = AuthorizerSettings.from_env()
    store = TenantStore(boto3.client("dynamodb"), settings.tenants_table, settings.api_keys_table)
    return FrontDoor(store, logger=Logger(service=SERVICE_NAME))


def lambda_handler(event, context):
    """Entry point of a function served by a function URL: the key check, then the function's own handler."""
    if "handler" not in _state:
        _state["handler"] = _load(WRAPPED)
    if not is_function_url_event(event):
        return _state["handler"](event, context)
    if "door" not in _state:
        _state["door"] = _front_door()
    return _state["door"].handle(event, context, _state["handler"])
