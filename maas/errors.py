"""The one error shape of the public API: {"error": {"message", "type", "code"}} (OpenAI's), with its status."""

from __future__ import annotations


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
        error = {"message": self.message, "type": self.type, "code": self.code}
        if self.param is not None:
            error["param"] = self.param
        return {"error": error}


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


def internal_error_body() -> dict:
    return {
        "error": {"message": "Internal error; it has been logged.", "type": "server_error", "code": "internal_error"}
    }
