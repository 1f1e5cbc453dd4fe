"""Request bodies and their errors, without the HTTP framework: compact JSON, the body size limit, and pydantic
validation errors as one readable 400 in the error shape. Used by the Lambda routes (maas.api.resolver re-exports
these) and by the heavy-model endpoint, which has no Powertools."""

from __future__ import annotations

import base64
import json
import re

from pydantic import BaseModel, ValidationError

from maas.errors import ApiError, InvalidRequest, PayloadTooLarge, UnsupportedMediaType


def dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def check_body_size(body: str, max_body_bytes: int) -> None:
    """413 in the error shape when the body's UTF-8 size is over the limit."""
    # len(str) <= UTF-8 bytes <= 4 * len(str): encode only when the cheap bounds do not decide.
    if len(body) > max_body_bytes or (4 * len(body) > max_body_bytes and len(body.encode("utf-8")) > max_body_bytes):
        raise PayloadTooLarge(f"Request body exceeds the {max_body_bytes}-byte limit.")


def invalid_json(detail: str) -> ApiError:
    return InvalidRequest(
        f"Request body is not valid JSON ({detail})." if detail else "Request body is not valid JSON.",
        code="invalid_json",
    )


def validation_error(errors: list[dict]) -> ApiError:
    """The 400 for a list of pydantic errors (from Powertools' validation or a direct model_validate_json)."""
    if errors and errors[0].get("type") == "json_invalid":
        return invalid_json(errors[0].get("ctx", {}).get("error", ""))
    code = "unsupported_parameter" if errors and errors[0].get("type") == "extra_forbidden" else "invalid_request"
    return InvalidRequest(describe_validation_errors(errors), code=code)


_TYPE_TAG = re.compile(r"^(str|int|float|bool|none|list\[.*\]|dict\[.*\]|tuple\[.*\]|function-.*)$")


def _field(loc) -> tuple[str, list[str]]:
    """Render a pydantic error location as `input[1]`; return the union branch tags it went through."""
    name, tags = "", []
    for part in loc:
        if part == "body":
            continue
        if isinstance(part, int):
            name += f"[{part}]"
        elif _TYPE_TAG.match(part):
            tags.append(part)
        else:
            name += f".{part}" if name else part
    return name, tags


def describe_validation_errors(errors: list[dict]) -> str:
    """One readable sentence per offending parameter. Errors from the branches of a union are merged:
    the most specific one wins (`'input[1]': ...`), or, if none is deeper, 'expected A or B'."""
    groups: dict[str, list[tuple[str, list[str], dict]]] = {}
    for err in errors:
        name, tags = _field(err.get("loc", ()))
        groups.setdefault(name.split("[")[0].split(".")[0], []).append((name, tags, err))
    sentences = []
    for items in list(groups.values())[:5]:
        name, tags, err = max(items, key=lambda item: len(item[0]))
        kind, msg = err.get("type", ""), err.get("msg", "invalid value").removeprefix("Value error, ")
        if kind == "extra_forbidden":
            sentences.append(f"Unsupported parameter: '{name}'.")
        elif kind == "missing":
            sentences.append(f"Missing required parameter: '{name}'.")
        elif len(items) > 1 and len({n for n, _, _ in items}) == 1 and all(t for _, t, _ in items):
            expected = " or ".join(dict.fromkeys(t[0] for _, t, _ in items))
            sentences.append(f"'{name}' has the wrong type: expected {expected}.")
        else:
            sentences.append(f"'{name}': {msg}." if name else f"{msg}.")
    return " ".join(sentences) or "Invalid request."


def require_json(content_type: str | None) -> None:
    """415 in the error shape unless the body is declared JSON (no Content-Type is taken as JSON)."""
    if content_type and not content_type.lower().startswith("application/json"):
        raise UnsupportedMediaType("Send the request body as JSON (Content-Type: application/json).")


def parse_json(text: str, model: type[BaseModel], max_body_bytes: int) -> BaseModel:
    """``text`` validated into ``model``: 413 over the size limit, 400 for bad JSON or fields."""
    check_body_size(text, max_body_bytes)
    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        raise validation_error(exc.errors()) from None


def json_body(event: dict, model: type[BaseModel], max_body_bytes: int) -> BaseModel:
    """An API Gateway event's JSON body validated into ``model``: 415, 413 and 400 in the error shape."""
    headers = event.get("headers") or {}
    require_json(next((v for k, v in headers.items() if k.lower() == "content-type"), None))
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8", errors="replace")
    return parse_json(body, model, max_body_bytes)
