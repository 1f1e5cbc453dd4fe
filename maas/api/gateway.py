"""API Gateway's own responses (auth failures, throttling, size, timeouts) in the API's one error shape.

Used by the CDK app (gateway responses) and by `maas serve`, which plays API Gateway locally.
"""

from __future__ import annotations

from collections.abc import Mapping

from maas.errors import error_body

# response type -> (status, error type, code, message). `$context.authorizer.<key>` is filled by API Gateway from the
# authorizer's Deny context (maas.tenancy.authorizer.refusal_context): the authorizer's own type, code and message.
GATEWAY_RESPONSES = {
    "UNAUTHORIZED": (
        401,
        "authentication_error",
        "invalid_api_key",
        "Missing or invalid API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'.",
    ),
    "ACCESS_DENIED": (403, "$context.authorizer.type", "$context.authorizer.code", "$context.authorizer.reason"),
    "THROTTLED": (429, "rate_limit_error", "rate_limited", "Too many requests: slow down and retry."),
    "QUOTA_EXCEEDED": (429, "rate_limit_error", "quota_exceeded", "Usage plan quota exceeded."),
    "REQUEST_TOO_LARGE": (413, "invalid_request_error", "payload_too_large", "Request body too large."),
    "INTEGRATION_TIMEOUT": (504, "server_error", "timeout", "The request timed out."),
    "DEFAULT_4XX": (400, "invalid_request_error", "invalid_request", "$context.error.message"),
    "DEFAULT_5XX": (502, "server_error", "bad_gateway", "The service failed to answer; retry later."),
}


AUTHORIZER_VARIABLE = "$context.authorizer."


def gateway_error(response_type: str, authorizer: Mapping[str, str] | None = None) -> tuple[int, dict]:
    """(status, body) of a gateway response as API Gateway renders it, ``authorizer`` (the authorizer's context)
    filling its `$context.authorizer.<key>` variables."""
    context = authorizer or {}

    def render(value: str) -> str:
        return (
            context.get(value.removeprefix(AUTHORIZER_VARIABLE), "") if value.startswith(AUTHORIZER_VARIABLE) else value
        )

    status, kind, code, message = GATEWAY_RESPONSES[response_type]
    return status, error_body(render(message), render(kind), render(code))
