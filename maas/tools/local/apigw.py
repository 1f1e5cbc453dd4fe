"""Turn HTTP requests into the API Gateway REST (v1) proxy events production sends, and back."""

from __future__ import annotations

import base64
import time
import uuid
from urllib.parse import parse_qsl

TEXT_TYPES = ("application/json", "text/", "application/xml", "application/x-www-form-urlencoded")


def make_event(
    method: str,
    path: str,
    *,
    query: str = "",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    stage: str = "local",
    resource: str | None = None,
    source_ip: str = "127.0.0.1",
    authorizer: dict | None = None,
    request_id: str | None = None,
    stage_in_path: bool = True,
) -> dict:
    """An API Gateway REST proxy event, shaped as `sam local` and production send it.

    Binary (non-text) bodies are base64-encoded with isBase64Encoded true, as API Gateway does when
    binary media types are configured. ``stage_in_path``: the client's URL starts with the stage (an
    execute-api URL: `requestContext.path` is `/{stage}{path}`) or not (a custom domain, `sam local`,
    `maas serve`).
    """
    headers = dict(headers or {})
    multi_headers = {k: [v] for k, v in headers.items()}
    lower = {k.lower(): v for k, v in headers.items()}
    pairs = parse_qsl(query, keep_blank_values=True)
    single_q: dict[str, str] = {}
    multi_q: dict[str, list[str]] = {}
    for k, v in pairs:
        single_q[k] = v
        multi_q.setdefault(k, []).append(v)
    content_type = lower.get("content-type", "")
    is_b64 = False
    text_body: str | None = None
    if body:
        if content_type == "" or content_type.startswith(TEXT_TYPES):
            try:
                text_body = body.decode("utf-8")
            except UnicodeDecodeError:
                text_body, is_b64 = base64.b64encode(body).decode("ascii"), True
        else:
            text_body, is_b64 = base64.b64encode(body).decode("ascii"), True
    now = time.time()
    request_id = request_id or str(uuid.uuid4())
    return {
        "resource": resource or path,
        "path": path,
        "httpMethod": method.upper(),
        "headers": headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": single_q or None,
        "multiValueQueryStringParameters": multi_q or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource or path,
            "httpMethod": method.upper(),
            "path": f"/{stage}{path}" if stage_in_path else path,
            "stage": stage,
            "requestId": request_id,
            "extendedRequestId": request_id,
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000),
            "protocol": "HTTP/1.1",
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": lower.get("host", "127.0.0.1").split(":")[0],
            "identity": {"sourceIp": source_ip, "userAgent": lower.get("user-agent", "")},
            "authorizer": authorizer,
        },
        "body": text_body,
        "isBase64Encoded": is_b64,
    }


def response_parts(result: dict) -> tuple[int, dict[str, str], bytes]:
    """A Lambda proxy result -> (status, headers, body bytes)."""
    status = int(result.get("statusCode", 502))
    headers = {k: str(v) for k, v in (result.get("headers") or {}).items()}
    for k, values in (result.get("multiValueHeaders") or {}).items():
        headers[k] = ", ".join(str(v) for v in values)
    body = result.get("body") or ""
    data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode("utf-8")
    return status, headers, data
