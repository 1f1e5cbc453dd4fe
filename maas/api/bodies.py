"""Request bodies and their errors, without the HTTP framework: compact JSON, the body size limit, and pydantic
validation errors as one readable 400 in the error shape. Used by the Lambda routes (maas.api.http re-exports
these) and by the heavy-model endpoint, which has no Powertools."""

from __future__ import annotations

import json
import re

from maas.errors import ApiError, InvalidRequest, PayloadTooLarge


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
