"""Request bodies without the HTTP framework (maas.bodies): size limit, content type, JSON and field errors, all
as ApiErrors in the one error shape."""

from __future__ import annotations

import base64

import pytest
from pydantic import BaseModel, ConfigDict

from maas.bodies import (
    check_body_size,
    describe_validation_errors,
    dumps,
    json_body,
    parse_json,
    require_json,
    validation_error,
)
from maas.errors import ApiError, InvalidRequest, PayloadTooLarge, UnsupportedMediaType


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: str | list[str]
    top_k: int = 1


def test_dumps_is_compact_and_keeps_non_ascii_text():
    # GIVEN a body with lists and non-ASCII text
    # WHEN a body with non-ASCII text is serialised
    text = dumps({"a": [1, 2], "t": "café ☕"})
    # THEN it has no spaces and the text as it is
    assert text == '{"a":[1,2],"t":"café ☕"}'


@pytest.mark.parametrize(
    "body,limit,refused",
    [
        ("x" * 10, 10, False),
        ("x" * 11, 10, True),
        ("é" * 5, 10, False),  # 10 UTF-8 bytes: exactly the limit
        ("é" * 6, 10, True),  # 6 characters, 12 bytes: over it although the length is not
        ("☕" * 3, 10, False),  # 9 bytes
        ("☕" * 4, 10, True),  # 12 bytes
    ],
)
def test_body_size_counts_utf8_bytes(body, limit, refused):
    # GIVEN a body and a byte limit
    # WHEN its size is checked
    if refused:
        # THEN one over the limit is a 413 naming the limit
        with pytest.raises(PayloadTooLarge, match=f"{limit}-byte limit"):
            check_body_size(body, limit)
    else:
        # THEN one within it passes
        check_body_size(body, limit)


@pytest.mark.parametrize("content_type", [None, "", "application/json", "Application/JSON; charset=utf-8"])
def test_json_or_undeclared_content_type_is_accepted(content_type):
    # GIVEN a JSON or no Content-Type
    # WHEN it is checked
    # THEN nothing is raised
    require_json(content_type)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "image/png"])
def test_other_content_types_are_a_415(content_type):
    # GIVEN a Content-Type other than JSON
    # WHEN it is checked
    with pytest.raises(UnsupportedMediaType) as info:
        require_json(content_type)
    # THEN it is a 415
    assert info.value.status == 415 and info.value.code == "unsupported_media_type"


def test_valid_json_is_validated_into_the_model():
    # GIVEN a model with a union field and a default
    # WHEN a valid body is parsed
    request = parse_json('{"input": ["a", "b"], "top_k": 3}', Body, 1000)
    # THEN the model holds its values
    assert request == Body(input=["a", "b"], top_k=3)


@pytest.mark.parametrize(
    "text,code,message",
    [
        ("{not json", "invalid_json", "Request body is not valid JSON ("),
        ("", "invalid_request", "The request body is empty: send a JSON object"),
        ("  \n", "invalid_request", "The request body is empty: send a JSON object"),
        ('{"top_k": 2}', "invalid_request", "Missing required parameter: 'input'."),
        ('{"input": "a", "temperature": 1}', "unsupported_parameter", "Unsupported parameter: 'temperature'."),
        ('{"input": "a", "top_k": "two"}', "invalid_request", "'top_k': "),
        ('{"input": 3}', "invalid_request", "'input' has the wrong type: expected str or list[str]."),
        ('{"input": ["a", 3]}', "invalid_request", "'input[1]': "),
    ],
)
def test_bad_bodies_are_one_readable_400(text, code, message):
    # GIVEN a body that is not JSON, or does not fit the model
    # WHEN a malformed body is parsed
    with pytest.raises(InvalidRequest) as info:
        parse_json(text, Body, 1000)
    # THEN it is a 400 with the code and a sentence naming the parameter
    err = info.value
    assert (err.status, err.code) == (400, code)
    assert message in err.message, err.message
    assert err.body() == {"error": {"message": err.message, "type": "invalid_request_error", "code": code}}


def test_oversized_body_is_refused_before_it_is_parsed():
    # GIVEN a valid body over the limit
    body = '{"input": "' + "x" * 100 + '"}'
    # WHEN it is parsed
    # THEN the answer is the size refusal, not a validation result
    with pytest.raises(PayloadTooLarge):
        parse_json(body, Body, 50)


def test_validation_errors_name_at_most_five_parameters():
    # GIVEN pydantic errors for seven different parameters
    errors = [{"type": "missing", "loc": (f"p{i}",), "msg": "Field required"} for i in range(7)]
    # WHEN they are described
    text = describe_validation_errors(errors)
    # THEN five sentences say which, in order
    assert text == " ".join(f"Missing required parameter: 'p{i}'." for i in range(5))


def test_resolver_errors_under_body_read_like_direct_ones():
    # GIVEN Powertools' errors, whose locations start with "body"
    errors = [{"type": "extra_forbidden", "loc": ("body", "nope"), "msg": "Extra inputs are not permitted"}]
    # WHEN turned into the API's error
    err = validation_error(errors)
    # THEN "body" is not named, and the code is the one the hot path gives
    assert isinstance(err, ApiError) and err.message == "Unsupported parameter: 'nope'."
    assert err.code == "unsupported_parameter"


def test_event_body_base64_and_header_case_are_handled():
    # GIVEN an API Gateway event with a base64 body and a lower-case content-type header
    event = {
        "headers": {"content-type": "application/json"},
        "body": base64.b64encode(b'{"input": "hi"}').decode(),
        "isBase64Encoded": True,
    }
    # WHEN its body is read
    request = json_body(event, Body, 1000)
    # THEN it is the decoded JSON
    assert request == Body(input="hi")


def test_event_with_another_content_type_is_a_415_before_its_body_is_read():
    # GIVEN an event declaring plain text, whose body is not JSON either
    event = {"headers": {"Content-Type": "text/plain"}, "body": "{not json"}
    # WHEN its body is read
    # THEN the content type decides: a 415, not a 400
    with pytest.raises(UnsupportedMediaType):
        json_body(event, Body, 1000)


@pytest.mark.parametrize(
    "text,message",
    [
        ('{"input": "a", "input": "b"}', "the key 'input' appears twice in one object"),
        ('{"input": "a", "top_k": NaN}', "NaN is not a JSON number"),
        ('{"input": "a", "top_k": -Infinity}', "-Infinity is not a JSON number"),
        ('{"input": ["a"], "extra": {"x": 1e999}}', "the number 1e999 is out of range"),
        ('{"input": "a", "top_k": ' + "9" * 5000 + "}", "not valid JSON"),
        ('{"input": ' + "[" * 5000 + "]" * 5000 + "}", "not valid JSON"),
    ],
)
def test_ambiguous_or_hostile_json_is_a_400_never_a_guess(text, message):
    # GIVEN JSON that RFC 8259 leaves undefined (a key twice, NaN, numbers out of range) or nested 5,000 deep
    class Loose(BaseModel):
        input: object
        top_k: object = None
        extra: object = None

    # WHEN it is parsed into a model that would accept any value
    with pytest.raises(InvalidRequest) as info:
        parse_json(text, Loose, 10**6)
    # THEN it is a 400 invalid_json that says what was wrong
    assert info.value.code == "invalid_json"
    assert message in info.value.message, info.value.message


def test_numbers_and_words_inside_strings_are_not_mistaken_for_hostile_json():
    # GIVEN text that mentions NaN, Infinity, 1e999 and a 30-digit number inside strings
    text = '{"input": ["NaN and Infinity", "1e999", "' + "1" * 30 + '"], "top_k": 3}'
    # WHEN it is parsed
    # THEN it is accepted as it is
    assert parse_json(text, Body, 1000) == Body(input=["NaN and Infinity", "1e999", "1" * 30], top_k=3)


def test_a_body_that_is_not_utf8_is_a_400_naming_the_byte():
    # GIVEN a binary (base64) body whose bytes are not UTF-8
    event = {"headers": {}, "body": base64.b64encode(b'{"input": "caf\xe9"}').decode(), "isBase64Encoded": True}
    # WHEN its body is read
    with pytest.raises(InvalidRequest) as info:
        json_body(event, Body, 1000)
    # THEN it is refused, never decoded with a replacement character
    assert info.value.code == "invalid_encoding"
    assert "byte 0xe9 at offset 14" in info.value.message


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "GZIP"])
def test_a_compressed_body_is_a_415_and_is_never_decompressed(encoding):
    # GIVEN a body declared compressed (whatever its bytes)
    event = {"headers": {"Content-Encoding": encoding}, "body": '{"input": "a"}'}
    # WHEN it is read
    with pytest.raises(UnsupportedMediaType) as info:
        json_body(event, Body, 1000)
    # THEN it is refused: the function never inflates a body
    assert info.value.code == "unsupported_content_encoding"
    # AND identity is fine
    assert json_body({"headers": {"content-encoding": "identity"}, "body": '{"input": "a"}'}, Body, 1000)
