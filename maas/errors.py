"""The error bodies of the public API, with their status: {"error": {"message", "type", "code"}} (OpenAI's) on every
route but the Open Inference Protocol's (KServe v2), which answer {"error": "<message>"} as that protocol defines it
(tritonclient and KServe clients read ``error`` as a string); their code travels in the ``X-Error-Code`` header."""

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

    def body(self, kserve: bool = False) -> dict:
        """The error body: OpenAI's shape, or KServe v2's (``kserve``; the code goes in ``kserve_headers``)."""
        return kserve_error_body(self.message) if kserve else error_body(self.message, self.type, self.code, self.param)


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


# KServe v2's error body has only the message; the machine-readable code (the OpenAI shape's `code`) goes here.
ERROR_CODE_HEADER = "X-Error-Code"
INTERNAL_ERROR = ("Internal error; it has been logged.", "server_error", "internal_error")


def kserve_error_body(message: str) -> dict:
    """The Open Inference Protocol's (KServe v2) error body: {"error": "<message>"}."""
    return {"error": message}


def kserve_headers(code: str) -> dict[str, str]:
    """The headers of a KServe v2 error answer: its code, which the protocol's body has no place for."""
    return {ERROR_CODE_HEADER: code}


def error_json(message: str, type: str, code: str, *, kserve: bool = False) -> bytes:
    """The error body as compact UTF-8 JSON, for servers that write bytes (maas serve, the heavy endpoint);
    ``kserve``: the KServe v2 body (send ``kserve_headers(code)`` with it)."""
    body = kserve_error_body(message) if kserve else error_body(message, type, code)
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def internal_error_body(kserve: bool = False) -> dict:
    """The 500 body: nothing about the failure itself (it is logged, never sent)."""
    message, type, code = INTERNAL_ERROR
    return kserve_error_body(message) if kserve else error_body(message, type, code)
