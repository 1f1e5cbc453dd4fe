"""API Gateway's own responses (auth failures, throttling, size, timeouts) in the API's one error shape.

Used by the CDK app (gateway responses) and by `maas serve`, which plays API Gateway locally.
"""

from __future__ import annotations

from maas.errors import error_body

# response type -> (status, error type, code, message). `$context.authorizer.reason` is filled by
# API Gateway from the authorizer's Deny context (a suspended tenant's message).
GATEWAY_RESPONSES = {
    "UNAUTHORIZED": (
        401,
        "authentication_error",
        "invalid_api_key",
        "Missing or invalid API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'.",
    ),
    "ACCESS_DENIED": (403, "permission_error", "forbidden", "$context.authorizer.reason"),
    "THROTTLED": (429, "rate_limit_error", "rate_limited", "Too many requests: slow down and retry."),
    "QUOTA_EXCEEDED": (429, "rate_limit_error", "quota_exceeded", "Usage plan quota exceeded."),
    "REQUEST_TOO_LARGE": (413, "invalid_request_error", "payload_too_large", "Request body too large."),
    "INTEGRATION_TIMEOUT": (504, "server_error", "timeout", "The request timed out."),
    "DEFAULT_4XX": (400, "invalid_request_error", "invalid_request", "$context.error.message"),
    "DEFAULT_5XX": (502, "server_error", "bad_gateway", "The service failed to answer; retry later."),
}


def gateway_error(response_type: str, message: str | None = None) -> tuple[int, dict]:
    """(status, body) for a gateway response, with ``message`` standing in for a $context variable."""
    status, kind, code, template = GATEWAY_RESPONSES[response_type]
    text = message if template.startswith("$context") or message else template
    return status, error_body(text or template, kind, code)
