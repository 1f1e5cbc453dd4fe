"""API keys: format, hashing, and where a request carries one."""

import hashlib

import pytest

from maas.errors import Unauthorized
from maas.tenancy.keys import KEY_RE, credential, hash_key, new_key


def test_a_new_key_has_the_documented_format_and_its_prefix_is_its_public_part():
    # GIVEN nothing
    # WHEN a key is made
    key, prefix = new_key()

    # THEN it reads maas_<8-char id>_<32-char secret>, and the prefix is maas_<id> with nothing of the secret
    assert KEY_RE.match(key)
    assert key.startswith(prefix + "_") and len(prefix) == len("maas_") + 8
    assert key.rsplit("_", 1)[1] not in prefix


def test_new_keys_are_not_repeated():
    # GIVEN nothing
    # WHEN many keys are made
    keys = {new_key()[0] for _ in range(200)}

    # THEN they are all different
    assert len(keys) == 200


def test_a_key_is_stored_as_its_sha256():
    # GIVEN a key
    key, _ = new_key()

    # WHEN it is hashed for the keys table
    stored = hash_key(key)

    # THEN it is the hex sha256 of its UTF-8 bytes, which does not contain the key
    assert stored == hashlib.sha256(key.encode("utf-8")).hexdigest()
    assert key not in stored and len(stored) == 64


def test_malformed_keys_do_not_match_the_format():
    # GIVEN keys with a wrong prefix, a short secret, or a bad character
    good, _ = new_key()
    bad = ["sk_" + good[5:], good[:-1], good[:-1] + "!", good + "x"]

    # WHEN they are checked
    # THEN none matches, so the store refuses them before any lookup
    assert not any(KEY_RE.match(key) for key in bad)


def test_the_bearer_header_wins_over_x_api_key_and_names_are_case_insensitive():
    # GIVEN both headers, in odd case
    headers = {"AUTHORIZATION": "bearer  maas_bearer ", "X-Api-Key": "maas_header"}

    # WHEN the key is taken from the request
    # THEN the bearer token is used, trimmed; without it, x-api-key is
    assert credential(headers) == "maas_bearer"
    assert credential({"x-api-key": " maas_header "}) == "maas_header"


def test_no_credential_is_none_and_another_authorization_is_refused_not_resolved_through_x_api_key():
    # GIVEN no headers; then another auth scheme or an empty bearer token, with a valid-looking x-api-key beside
    # WHEN the credential is taken from the request
    # THEN without headers there is none; a bad Authorization is a 401, never a fall back to x-api-key
    assert credential(None) is None
    for authorization in ("Basic dXNlcjpwYXNz", "Bearer   "):
        with pytest.raises(Unauthorized):
            credential({"Authorization": authorization, "x-api-key": "maas_header"})
