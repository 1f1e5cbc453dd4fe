"""Hostile bodies on every POST route of `maas serve` (real HTTP on 127.0.0.1, the real gateway and handlers): bytes
that are not UTF-8, JSON nested 5,000 deep, numbers out of range, NaN/Infinity, a key twice, a Content-Length that
lies, gzip/deflate bombs, empty bodies, the wrong Content-Type, empty and truncated images. Every one is a 4xx in
the route's error shape, answered in time, and nothing is billed (refusals are counted apart).

Each route's base body is served first (so the hostile variant, not the base, is what is refused); the table then
sends each variant on a raw socket (a client library would correct a lying Content-Length).
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import socket
import time
import zlib
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from tests.served import EMBEDDING_MODEL, HEAVY_MODEL, serve

BODY_TIMEOUT_S = 1.0  # the server's wait for a body that stops arriving (10 s by default), short for the test
ANSWER_WITHIN_S = 15.0  # "no hang": every answer, the timed-out body's included, well before this
TEXT = "@@TEXT@@"  # placeholder a variant replaces with raw bytes
NUMBER = "@@NUMBER@@"


@dataclass(frozen=True)
class PostRoute:
    """A POST route, a body it serves (with the TEXT and NUMBER placeholders where a string and a number go)."""

    path: str
    body: dict
    billed: bool = True
    kserve: bool = False  # a KServe v2 infer route: its errors may be KServe's `{"error": "<message>"}`


def _png() -> str:
    from PIL import Image

    out = io.BytesIO()
    Image.new("L", (8, 8), color=128).save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


def _infer(path: str) -> PostRoute:
    tensor = {"datatype": "INT64", "shape": [1, 3]}
    ids = {"name": TEXT + "input_ids", **tensor, "data": [101, NUMBER, 102]}
    return PostRoute(path, {"inputs": [ids, {"name": "attention_mask", **tensor, "data": [1, 1, 1]}]}, kserve=True)


ROUTES = (
    PostRoute("/v1/embeddings", {"model": EMBEDDING_MODEL, "input": [TEXT + "hello"], "dimensions": NUMBER}),
    PostRoute("/v1/feature-extraction", {"inputs": [TEXT + "hello"], "dimensions": NUMBER}),
    PostRoute("/v1/classify", {"inputs": TEXT + "my card was charged twice", "parameters": {"top_k": NUMBER}}),
    PostRoute("/v1/images/classify", {"inputs": _png(), "model": TEXT + "digits-cnn", "parameters": {"top_k": NUMBER}}),
    PostRoute("/v1/rerank", {"query": TEXT + "password", "documents": ["reset it", "hours"], "top_n": NUMBER}),
    PostRoute("/v2/rerank", {"query": TEXT + "password", "documents": ["reset it", "hours"], "top_n": NUMBER}),
    _infer(f"/v2/models/{EMBEDDING_MODEL}/infer"),
    _infer(f"/v2/models/{EMBEDDING_MODEL}/versions/1/infer"),
    _infer(f"/v2/models/{HEAVY_MODEL}/infer"),
    PostRoute("/v1/jobs", {"model": TEXT + EMBEDDING_MODEL, "input_format": "jsonl"}, billed=False),
)
# The numbers the base bodies are served with.
SERVED_NUMBER = {"dimensions": "384", "top_k": "1", "top_n": "1"}


def _render(route: PostRoute, text: bytes = b"", number: bytes | None = None) -> bytes:
    """The route's body with ``text`` at its text and ``number`` at its number (None: the number it is served with;
    a route without a number gets ``number`` in place of its first parameter)."""
    body = json.dumps(route.body)
    if number is None:
        key = next((k for k in SERVED_NUMBER if f'"{k}": "{NUMBER}"' in body), None)
        number = (SERVED_NUMBER[key] if key else "2000").encode()  # else v2's: a token id
    elif NUMBER not in body:
        body = json.dumps({**route.body, next(iter(route.body)): NUMBER})
    return body.encode().replace(TEXT.encode(), text).replace(f'"{NUMBER}"'.encode(), number)


def _base(route: PostRoute) -> bytes:
    return _render(route)


def _duplicate_key(route: PostRoute) -> bytes:
    base = _base(route)
    first = next(iter(route.body))
    again = json.dumps({first: json.loads(base)[first]}).encode()[1:-1]
    return base[:-1] + b", " + again + b"}"


GZIP_BOMB = gzip.compress(b"[" + b"0," * 10_000_000 + b"0]")  # 20 MB of JSON in ~20 KB
DEFLATE_BOMB = zlib.compress(b" " * 30_000_000)
DEEP = b"[" * 5000 + b"]" * 5000
TRUNCATED_PNG = base64.b64decode(_png())[:40]


@dataclass(frozen=True)
class Variant:
    name: str
    status: int
    codes: tuple[str, ...]  # acceptable error codes (a route may catch some earlier than the body parser)
    build: object  # route -> (body bytes, extra headers, declared Content-Length or None)
    message: str = ""  # what the error message must say (case-insensitive)


FIELD_ERRORS = ("invalid_request", "invalid_json")
VARIANTS = (
    Variant("not UTF-8", 400, ("invalid_encoding",), lambda r: (_render(r, b"caf\xe9 \xff\xfe"), {}, None)),
    Variant("5,000 levels deep", 400, ("invalid_json",), lambda r: (_render(r, b"", DEEP), {}, None)),
    Variant("1e999", 400, FIELD_ERRORS, lambda r: (_render(r, b"", b"1e999"), {}, None)),
    Variant("-1e999", 400, FIELD_ERRORS, lambda r: (_render(r, b"", b"-1e999"), {}, None)),
    Variant("a 5,001-digit integer", 400, ("invalid_json",), lambda r: (_render(r, b"", b"1" + b"0" * 5000), {}, None)),
    Variant("NaN", 400, FIELD_ERRORS, lambda r: (_render(r, b"", b"NaN"), {}, None)),
    Variant("Infinity", 400, FIELD_ERRORS, lambda r: (_render(r, b"", b"Infinity"), {}, None)),
    Variant("a key twice", 400, ("invalid_json",), lambda r: (_duplicate_key(r), {}, None)),
    Variant("not an object", 400, ("invalid_request",), lambda r: (b'["a"]', {}, None)),
    Variant("empty", 400, ("invalid_request",), lambda r: (b"", {}, None), "request body is empty"),
    Variant("text/plain", 415, ("unsupported_media_type",), lambda r: (_base(r), {"Content-Type": "text/plain"}, None)),
    Variant(
        "gzip bomb",
        415,
        ("unsupported_content_encoding",),
        lambda r: (GZIP_BOMB, {"Content-Encoding": "gzip"}, None),
    ),
    Variant(
        "deflate bomb",
        415,
        ("unsupported_content_encoding",),
        lambda r: (DEFLATE_BOMB, {"Content-Encoding": "deflate"}, None),
    ),
    Variant("Content-Length longer than the body", 408, ("request_timeout",), lambda r: (_base(r), {}, 100_000)),
    Variant("Content-Length shorter than the body", 400, ("invalid_json",), lambda r: (_base(r), {}, 5)),
)
IMAGE_VARIANTS = (
    Variant("0-byte PNG", 400, ("invalid_request",), lambda r: (b"", {"Content-Type": "image/png"}, None)),
    Variant("truncated PNG", 400, ("invalid_image",), lambda r: (TRUNCATED_PNG, {"Content-Type": "image/png"}, None)),
)
IMAGE_PATH = "/v1/images/classify"


def _cases():
    for route in ROUTES:
        for variant in VARIANTS + IMAGE_VARIANTS:
            if route.path != IMAGE_PATH and variant in IMAGE_VARIANTS:
                # on a JSON-only route an image body is the wrong Content-Type
                variant = Variant(variant.name, 415, ("unsupported_media_type",), variant.build)
            yield pytest.param(route, variant, id=f"{route.path} {variant.name}")


@pytest.fixture(scope="module")
def served():
    for s in serve("Hostile bodies"):
        s.running.httpd.body_timeout_s = BODY_TIMEOUT_S
        yield s


def _send(served, path: str, body: bytes, headers: dict, declared: int | None) -> tuple[int, dict]:
    """POST on a raw socket (so the Content-Length can lie): (status, JSON body), within ANSWER_WITHIN_S."""
    url = urlsplit(served.base_url)
    head = {"Host": url.netloc, "Authorization": f"Bearer {served.key}", "Content-Type": "application/json"}
    head.update(headers, **{"Content-Length": str(len(body) if declared is None else declared)})
    request = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in head.items()) + "\r\n"
    with socket.create_connection((url.hostname, url.port), timeout=ANSWER_WITHIN_S) as sock:
        sock.sendall(request.encode() + body)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < _length(answer):
            chunk = sock.recv(65536)  # a hang is a socket timeout: the test fails
            if not chunk:
                break
            answer += chunk
    head_text, _, payload = answer.partition(b"\r\n\r\n")
    status = int(head_text.split(b" ", 2)[1])
    return status, json.loads(payload[: _length(answer)])


def _length(answer: bytes) -> int:
    for line in answer.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def assert_route_error(route: PostRoute, status: int, body: dict, expected: Variant) -> None:
    """The route's error shape with the expected status and code (KServe routes may answer `{"error": "..."}`)."""
    assert status == expected.status, (status, body)
    assert set(body) == {"error"}, body
    if route.kserve and isinstance(body["error"], str):
        assert body["error"]
        return
    error = body["error"]
    assert {"message", "type", "code"} <= set(error) and error["message"], body
    assert error["code"] in expected.codes, body
    assert expected.message.lower() in error["message"].lower(), body


def _billed(served) -> list:
    from maas.metering.store import Meter
    from maas.tables import USAGE
    from maas.tools.local.emulator import AwsEmulator

    emulator = AwsEmulator()
    emulator.url = served.moto_url
    return Meter(emulator.client("dynamodb"), USAGE.local_name).events(served.tenant, 0, time.time() + 60)


@pytest.fixture(scope="module")
def bases_served(served):
    """Each route's base body answered 2xx, once: the variants below differ from a served body only by their fault."""
    for route in ROUTES:
        status, body = _send(served, route.path, _base(route), {}, None)
        assert status in (200, 201), (route.path, status, body)
    return len(_billed(served))


@pytest.mark.slow
@pytest.mark.parametrize("route,variant", list(_cases()))
def test_every_hostile_body_is_a_4xx_in_the_error_shape_in_time_and_not_billed(served, bases_served, route, variant):
    # GIVEN a POST route and a body made hostile in one way
    body, headers, declared = variant.build(route)
    # WHEN it is sent
    started = time.monotonic()
    status, answer = _send(served, route.path, body, headers, declared)
    # THEN the answer is a 4xx in the route's error shape, in time
    assert_route_error(route, status, answer, variant)
    assert time.monotonic() - started < ANSWER_WITHIN_S
    # AND nothing more was billed than the bases
    if route.billed:
        assert len(_billed(served)) == bases_served


@pytest.mark.slow
def test_a_refusal_is_counted_apart_and_the_base_body_is_billed(served, bases_served):
    # GIVEN the bases billed, one event per metered route
    assert bases_served == sum(route.billed for route in ROUTES)
    # WHEN a body that is not UTF-8 is refused on the hot route
    route = ROUTES[0]
    status, _ = _send(served, route.path, _render(route, b"\xff"), {}, None)
    assert status == 400
    # THEN it is counted as a failed request of the tenant, and not billed
    from maas.tables import USAGE
    from maas.tools.local.emulator import AwsEmulator

    emulator = AwsEmulator()
    emulator.url = served.moto_url
    items = emulator.client("dynamodb").scan(
        TableName=USAGE.local_name,
        FilterExpression="tenant_id = :t AND begins_with(pk, :f)",
        ExpressionAttributeValues={":t": {"S": served.tenant}, ":f": {"S": "FAIL#"}},
    )["Items"]
    assert any(item["status"]["N"] == "400" for item in items)
    assert len(_billed(served)) == bases_served
