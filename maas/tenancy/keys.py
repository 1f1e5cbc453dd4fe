"""API keys: their format, their hash, and where a request carries one.

A key looks like ``maas_<8-char id>_<32-char secret>``; ``maas_<id>`` is its non-secret prefix, the
only part that ever appears in listings, logs and usage records.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string

from maas.errors import Unauthorized
from maas.settings.names import API_KEY_PREFIX

_ALPHABET = string.ascii_letters + string.digits
KEY_RE = re.compile(rf"^{API_KEY_PREFIX}([A-Za-z0-9]{{8}})_([A-Za-z0-9]{{32}})$")


def hash_key(key: str) -> str:
    """What the keys table stores of a key: its sha256, hex."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> tuple[str, str]:
    """(key, prefix): a new random key and its non-secret prefix."""
    key_id = "".join(secrets.choice(_ALPHABET) for _ in range(8))
    secret = "".join(secrets.choice(_ALPHABET) for _ in range(32))
    return f"{API_KEY_PREFIX}{key_id}_{secret}", f"{API_KEY_PREFIX}{key_id}"


BEARER = "bearer"


def credential(headers: dict[str, str] | None) -> str | None:
    """The one credential a request is judged by (names case-insensitive).

    `Authorization` whenever it is sent: it must be `Bearer <key>`, and anything else is refused, never resolved
    through `x-api-key` (a verdict cached on `Authorization` must not depend on another header). Only a request
    without `Authorization` is judged by `x-api-key`. None when neither is sent.
    """
    lower = {name.lower(): value for name, value in (headers or {}).items()}
    authorization = (lower.get("authorization") or "").strip()
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != BEARER or not token.strip():
            raise Unauthorized(
                "The Authorization header must be 'Bearer <key>' (or send the key in x-api-key without it).",
                code="invalid_authorization_header",
            )
        return token.strip()
    return (lower.get("x-api-key") or "").strip() or None
