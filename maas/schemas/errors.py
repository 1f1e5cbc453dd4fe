"""The error bodies (maas.errors produces them): {"error": {"message", "type", "code"}} on every route but the
KServe v2 tensor routes, which answer {"error": "<message>"} (that protocol's) with the code in X-Error-Code."""

from __future__ import annotations

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: str
    param: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class KServeErrorResponse(BaseModel):
    """The Open Inference Protocol's error body; the code is in the X-Error-Code response header."""

    error: str
