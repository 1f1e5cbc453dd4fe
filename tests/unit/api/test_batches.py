"""The multipart upload of POST /v1/files, parsed byte for byte."""

from __future__ import annotations

import base64

import pytest

from maas.api.batches import form_of, parse_multipart
from maas.errors import ApiError

BOUNDARY = "----b0undary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def event_of(body: bytes, content_type: str) -> dict:
    """An API Gateway event with a binary (base64) body, as a binary media type arrives."""
    return {"headers": {"Content-Type": content_type}, "body": base64.b64encode(body).decode(), "isBase64Encoded": True}


def form(*fields: tuple[str, str | None, bytes]) -> bytes:
    out = b""
    for name, filename, data in fields:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def test_fields_keep_their_exact_bytes_crlf_and_all():
    data = b'{"a": 1}\r\n{"b": "\xc3\xa9"}\n\r\n'
    fields = parse_multipart(
        form(("purpose", None, b"batch"), ("file", "in.jsonl", data)), f"multipart/form-data; boundary={BOUNDARY}"
    )
    assert fields["file"].data == data and fields["file"].filename == "in.jsonl"
    assert fields["purpose"].data == b"batch" and fields["purpose"].filename is None


@pytest.mark.parametrize(
    "body, content_type, status",
    [
        (form(("file", "x", b"1")), "multipart/form-data", 400),  # no boundary
        (form(("file", "x", b"1"))[:-10], MULTIPART, 400),  # truncated
        (b"{}", "application/json", 415),
    ],
)
def test_malformed_uploads_are_4xx_in_the_error_shape(body, content_type, status):
    event = {
        "headers": {"Content-Type": content_type},
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }
    with pytest.raises(ApiError) as err:
        form_of(event, 1024)
    assert err.value.status == status


def test_an_upload_over_the_limit_is_413():
    big = form(("file", "x", b"x" * (200 * 1024)))
    event = {
        "headers": {"content-type": f"multipart/form-data; boundary={BOUNDARY}"},
        "body": base64.b64encode(big).decode(),
        "isBase64Encoded": True,
    }
    with pytest.raises(ApiError) as err:
        form_of(event, 1024)
    assert err.value.status == 413
