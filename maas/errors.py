"""The one error shape of the public API: {"error": {"message", "type", "code"}} (OpenAI's), with its status."""

from __future__ import annotations

import json


class ApiError(Exception):
    """An error a client caused or must know about; carries its HTTP status and OpenAI-style type/code."""

    status = 400
    type = "invalid_request_error"
    code = "invalid_request"
    headers: dict[str, str] = {}  # extra response headers (e.g. Retry-After); never mutated

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code:
            self.code = code

    def body(self) -> dict:
        return error_body(self.message, self.type, self.code, self.param)


class InvalidRequest(ApiError):
    pass


class Unauthorized(ApiError):
    status, type, code = 401, "authentication_error", "invalid_api_key"


class Forbidden(ApiError):
    status, type, code = 403, "permission_error", "forbidden"


class NotFound(ApiError):
    status, type, code = 404, "not_found_error", "not_found"


class MethodNotAllowed(ApiError):
    status, type, code = 405, "invalid_request_error", "method_not_allowed"


class PayloadTooLarge(ApiError):
    status, type, code = 413, "invalid_request_error", "payload_too_large"


class UnsupportedMediaType(ApiError):
    status, type, code = 415, "invalid_request_error", "unsupported_media_type"


class TooManyRequests(ApiError):
    status, type, code = 429, "rate_limit_error", "rate_limit_exceeded"


class ServiceUnavailable(ApiError):
    status, type, code = 503, "service_unavailable_error", "model_unavailable"


def error_body(message: str, type: str, code: str, param: str | None = None) -> dict:
    """The body of every error answer: {"error": {"message", "type", "code"[, "param"]}}."""
    error = {"message": message, "type": type, "code": code}
    if param is not None:
        error["param"] = param
    return {"error": error}


def error_json(message: str, type: str, code: str) -> bytes:
    """``error_body`` as compact UTF-8 JSON, for servers that write bytes (maas serve, the heavy endpoint)."""
    return json.dumps(error_body(message, type, code), separators=(",", ":"), ensure_ascii=False).encode()


def internal_error_body() -> dict:
    """The 500 body: nothing about the failure itself (it is logged, never sent)."""
    return error_body("Internal error; it has been logged.", "server_error", "internal_error")
