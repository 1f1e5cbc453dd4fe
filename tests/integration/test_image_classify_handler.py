"""functions/image_classify with the real digits-cnn package and onnxruntime: the accuracy report, golden
pictures (PNG and JPEG renderings of held-out digits, JSON and raw bodies), every refusal, metering, version
pinning, `maas serve`'s real HTTP path with a raw image/png body, and `maas models build digits-cnn`."""

from __future__ import annotations

import base64
import io
import json
import struct
import time
import uuid
import zlib

import numpy as np
import pytest
from PIL import Image

from maas.inference.loader import verify_package
from maas.inference.package import read_report
from maas.metering.store import Meter
from maas.tables import USAGE
from maas.tools.build import digits
from maas.tools.build.minilm import BuildError
from maas.tools.cli import main
from maas.tools.local.apigw import make_event
from maas.tools.local.functions import LambdaContext, load_handler
from tests.conftest import function_env, load_event

PATH = "/v1/images/classify"
N_GOLDEN = 50


@pytest.fixture(scope="session")
def held_out():
    split = digits.load_split()
    return split["x_test"], split["y_test"]


@pytest.fixture(scope="session")
def image_handler(aws, digits_dir):
    """functions/image_classify as Lambda imports it, metered against the emulator."""
    return load_handler("image_classify", function_env(aws, digits_dir))


def _auth():
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    return {"principalId": tenant, "tenant_id": tenant, "plan": "pro", "key_prefix": "maas_imgs0000"}


def _call(handler, body: bytes, content_type: str = "application/json", query: str = "", auth=None):
    event = make_event(
        "POST", PATH, headers={"Content-Type": content_type}, body=body, query=query, authorizer=auth or _auth()
    )
    result = handler(event, LambdaContext())
    return result["statusCode"], json.loads(result["body"])


def _json(handler, body: dict, auth=None):
    return _call(handler, json.dumps(body).encode(), auth=auth)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A ~70-byte PNG whose header declares width x height greyscale pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _png_chunk(b"IEND", b"")
    )


def jpeg_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A real small JPEG whose SOF0 marker is rewritten to declare width x height."""
    out = io.BytesIO()
    Image.new("L", (8, 8), 255).save(out, "JPEG")
    data = bytearray(out.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def test_report_meets_the_accuracy_target(digits_dir):
    manifest = verify_package(digits_dir)  # every file, report.json included, matches its sha256
    report = read_report(digits_dir)
    assert (manifest.name, manifest.version, manifest.task) == ("digits-cnn", "1", "image-classify")
    assert manifest.labels == [str(d) for d in range(10)] and set(manifest.files) == {"model.onnx", "report.json"}
    assert report["n_test"] == 360 and report["n_train"] == 1437  # 20% of 1,797, stratified
    assert report["accuracy"]["int8"] >= digits.MIN_INT8_ACCURACY and report["accuracy"]["fp32"] >= 0.97
    assert min(report["accuracy_pictures_int8"].values()) >= 0.97  # rendered, decoded and preprocessed
    assert sum(c["test_correct_int8"] for c in report["per_class"].values()) == round(report["accuracy"]["int8"] * 360)
    assert manifest.evaluation == report
    tried = {t["method"]: t["held_out_accuracy"] for t in manifest.quantization.tried}
    assert len(tried) == 3 and tried[manifest.quantization.method] == report["accuracy"]["int8"]
    assert manifest.quality.size_ratio > 2.5 and manifest.quality.min_cosine > 0.95
    spec = manifest.image
    assert (spec.width, spec.height, spec.mode, spec.layout, spec.invert, spec.resize) == (
        8,
        8,
        "L",
        "NCHW",
        True,
        "box",
    )


def _golden_bodies(values, fmt: str) -> list[bytes]:
    if fmt == "PNG":
        return [digits.render(v, 32) for v in values]
    return [digits.render(v, 64, fmt="JPEG", resample="bilinear", quality=85) for v in values]


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_rendered_held_out_digits_are_classified_in_batches(image_handler, held_out, fmt):
    x, y = held_out
    pictures = _golden_bodies(x[:N_GOLDEN], fmt)
    labels = []
    for start in range(0, N_GOLDEN, 25):
        status, body = _json(image_handler, {"inputs": [_b64(p) for p in pictures[start : start + 25]]})
        assert status == 200, body
        assert all(len(scores) == 5 for scores in body)  # Hugging Face's default top_k
        for scores in body:
            assert [s["score"] for s in scores] == sorted((s["score"] for s in scores), reverse=True)
        labels += [int(scores[0]["label"]) for scores in body]
    accuracy = float(np.mean(np.array(labels) == y[:N_GOLDEN]))
    assert accuracy >= 0.96, accuracy


def test_raw_png_and_jpeg_bodies_give_one_flat_list(image_handler, held_out):
    x, y = held_out
    correct = 0
    for i in range(20):
        fmt = "PNG" if i % 2 else "JPEG"
        picture = _golden_bodies(x[i : i + 1], fmt)[0]
        status, body = _call(image_handler, picture, f"image/{fmt.lower()}", query="top_k=10")
        assert status == 200, body
        assert len(body) == 10 and sum(s["score"] for s in body) == pytest.approx(1.0, abs=1e-3)
        correct += int(body[0]["label"]) == y[i]
    assert correct >= 19


def test_scores_match_the_model_on_the_dataset_arrays(image_handler, digits_dir, held_out):
    """Golden: through HTTP shapes, PNG, decoding and preprocessing, the probabilities equal the packaged
    graph's on the dataset's own arrays within 0.01 (rendering rounds each value to a grey level)."""
    from maas.inference.images import ImageClassifier
    from maas.inference.package import read_manifest

    x, _ = held_out
    manifest = read_manifest(digits_dir)
    reference = ImageClassifier(digits_dir, manifest).classify(digits.normalize(x[:10], manifest.image))
    status, body = _json(
        image_handler, {"inputs": [_b64(digits.render(v, 32)) for v in x[:10]], "parameters": {"top_k": 10}}
    )
    assert status == 200
    got = np.array([[next(s["score"] for s in scores if s["label"] == str(d)) for d in range(10)] for scores in body])
    np.testing.assert_allclose(got, reference, atol=0.01)


def test_transparent_background_off_centre_and_non_square_pictures(image_handler, held_out):
    """Black ink on a transparent canvas is read on white; a non-square picture is padded to square."""
    x, y = held_out
    ink = Image.open(io.BytesIO(digits.render(x[0], 40))).convert("L")
    rgba = Image.new("RGBA", ink.size, (0, 0, 0, 0))
    rgba.putalpha(Image.eval(ink, lambda p: 255 - p))  # ink opaque black, background transparent
    wide = Image.new("L", (48, 40), 255)  # stretched to square, the digit would be 20% too wide
    wide.paste(ink, (4, 0))
    for picture in (rgba, wide):
        out = io.BytesIO()
        picture.save(out, "PNG")
        status, body = _call(image_handler, out.getvalue(), "image/png")
        assert status == 200 and body[0]["label"] == str(y[0]), body


def test_an_animated_png_is_classified_on_its_first_frame(image_handler, held_out):
    x, y = held_out
    other = next(i for i in range(len(y)) if y[i] != y[0])
    frames = [Image.open(io.BytesIO(digits.render(x[i], 32))) for i in (0, other)]
    out = io.BytesIO()
    frames[0].save(out, "PNG", save_all=True, append_images=frames[1:], duration=100)
    assert Image.open(io.BytesIO(out.getvalue())).n_frames == 2
    status, body = _call(image_handler, out.getvalue(), "image/png")
    assert status == 200 and body[0]["label"] == str(y[0])


def _gif() -> bytes:
    out = io.BytesIO()
    Image.new("L", (8, 8), 255).save(out, "GIF")
    return out.getvalue()


def _truncated_png() -> bytes:
    out = io.BytesIO()
    Image.effect_noise((64, 64), 60).save(out, "PNG")
    return out.getvalue()[:-200]


TWO_MIB = 2 * 1024 * 1024
BAD_RAW = [
    ("corrupt png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "image/png", "", 400, "invalid_image"),
    ("truncated png", None, "image/png", "", 400, "invalid_image"),
    ("not an image", b"hello, world" * 10, "image/jpeg", "", 400, "invalid_image"),
    ("empty body", b"", "image/png", "", 400, "invalid_request"),
    ("gif content type", None, "image/gif", "", 415, "unsupported_media_type"),
    ("text/plain bytes", b"\x89PNG\r\n\x1a\n", "text/plain", "", 415, "unsupported_media_type"),
    ("gif bytes as png", None, "image/png", "", 415, "unsupported_image_format"),
    ("png bomb", None, "image/png", "", 413, "image_too_large"),
    ("jpeg bomb", None, "image/jpeg", "", 413, "image_too_large"),
    ("just over the limit", None, "image/png", "", 413, "image_too_large"),
    ("too many bytes", b"\x89PNG\r\n\x1a\n" + b"\x00" * TWO_MIB, "image/png", "", 413, "payload_too_large"),
    ("top_k zero", None, "image/png", "top_k=0", 400, "invalid_request"),
    ("top_k text", None, "image/png", "top_k=three", 400, "invalid_request"),
    ("unknown model", None, "image/png", "model=vit-base", 404, "model_not_found"),
    ("another version", None, "image/png", "model=digits-cnn@2", 404, "model_not_found"),
]


@pytest.mark.parametrize("name,data,content_type,query,status,code", BAD_RAW, ids=[b[0] for b in BAD_RAW])
def test_bad_raw_bodies_get_a_4xx_in_the_error_shape(
    image_handler, held_out, name, data, content_type, query, status, code
):
    picture = digits.render(held_out[0][0], 32)
    data = {
        "truncated png": _truncated_png(),
        "gif content type": _gif(),
        "gif bytes as png": _gif(),
        "png bomb": png_bomb(),
        "jpeg bomb": jpeg_bomb(),
        "just over the limit": png_bomb(4097, 4096),  # Pillow only warns here: our header check refuses it
    }.get(name, data if data is not None else picture)
    got, body = _call(image_handler, data, content_type, query)
    assert (got, body["error"]["code"]) == (status, code), body
    assert set(body) == {"error"} and {"message", "type", "code"} <= set(body["error"])
    assert "Traceback" not in body["error"]["message"]


def test_bad_json_bodies_get_a_4xx_in_the_error_shape(image_handler, held_out):
    good = _b64(digits.render(held_out[0][0], 32))
    cases = [
        ({}, 400, "Missing required parameter: 'inputs'"),
        ({"inputs": []}, 400, "empty list"),
        ({"inputs": ""}, 400, "'inputs' is empty"),
        ({"inputs": "not base64!"}, 400, "not valid base64"),
        ({"inputs": [good, "aGVsbG8"]}, 400, "'inputs[1]' is not valid base64"),
        ({"inputs": "https://example.com/seven.png"}, 400, "not fetched from URLs"),
        ({"inputs": [good] * 33}, 400, "maximum per request is 32"),
        ({"inputs": good, "parameters": {"top_k": 0}}, 400, "'parameters.top_k' must be at least 1"),
        ({"inputs": good, "parameters": {"top_k": "two"}}, 400, "top_k"),
        ({"inputs": good, "parameters": {"candidate_labels": ["a"]}}, 400, "Unsupported parameter"),
        ({"inputs": _b64(b"\x00\x01garbage")}, 400, "could not be decoded"),
        ({"inputs": [good, _b64(_gif())]}, 415, "'inputs[1]' is a GIF image"),
        ({"inputs": _b64(png_bomb())}, 413, "pixels per image"),
        ({"inputs": good, "model": "all-minilm-l6-v2"}, 404, "not served by this endpoint"),
    ]
    for body, status, fragment in cases:
        got, result = _json(image_handler, body)
        assert got == status and fragment in result["error"]["message"], (body.keys(), result)
    got, result = _call(image_handler, json.dumps({"inputs": "A" * (TWO_MIB + 4)}).encode())
    assert got == 413 and result["error"]["code"] == "payload_too_large"
    got, result = _call(image_handler, b"{not json")
    assert got == 400 and result["error"]["code"] == "invalid_json"


def test_data_urls_and_wrapped_base64_are_accepted(image_handler, held_out):
    x, y = held_out
    encoded = _b64(digits.render(x[1], 32))
    wrapped = "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    for inputs in (f"data:image/png;base64,{encoded}", wrapped):
        status, body = _json(image_handler, {"inputs": inputs, "parameters": {"top_k": 1}})
        assert status == 200 and body == [{"label": str(y[1]), "score": body[0]["score"]}]


@pytest.mark.parametrize("model", ["digits-cnn", "digits-cnn@1", "DIGITS-CNN@latest"])
def test_model_ids_resolve_through_the_catalog(image_handler, held_out, model):
    picture = digits.render(held_out[0][0], 32)
    assert _json(image_handler, {"inputs": _b64(picture), "model": model})[0] == 200
    assert _call(image_handler, picture, "image/png", query=f"model={model}")[0] == 200


def test_each_call_is_billed_once_in_images_and_refusals_are_not(image_handler, aws, held_out):
    meter = Meter(aws.client("dynamodb"), USAGE.local_name)
    auth, start = _auth(), time.time() - 1
    pictures = [_b64(digits.render(v, 32)) for v in held_out[0][:3]]
    assert _json(image_handler, {"inputs": pictures}, auth)[0] == 200
    assert _call(image_handler, base64.b64decode(pictures[0]), "image/png", auth=auth)[0] == 200
    assert _json(image_handler, {"inputs": []}, auth)[0] == 400
    assert _call(image_handler, png_bomb(), "image/png", auth=auth)[0] == 413
    assert _call(image_handler, _gif(), "image/gif", auth=auth)[0] == 415
    events = sorted(meter.events(auth["tenant_id"], start, time.time() + 1), key=lambda e: e.units)
    assert [(e.model, e.version, e.task, e.units) for e in events] == [
        ("digits-cnn", "1", "image-classify", 1),
        ("digits-cnn", "1", "image-classify", 3),
    ]


def test_unauthenticated_calls_are_refused(image_handler):
    event = make_event("POST", PATH, headers={"Content-Type": "image/png"}, body=png_bomb())
    result = image_handler(event, LambdaContext())
    assert result["statusCode"] == 401 and json.loads(result["body"])["error"]["type"] == "authentication_error"


def test_a_missing_package_is_a_503(aws, tmp_path):
    handler = load_handler("image_classify", function_env(aws, tmp_path / "digits-cnn"))
    status, body = _call(handler, png_bomb(), "image/png")
    assert status == 503 and body["error"]["code"] == "model_unavailable"


@pytest.mark.parametrize(
    "event,status",
    [
        ("image_classify-post.json", 200),
        ("image_classify-post-batch.json", 200),
        ("image_classify-post-png.json", 200),
        ("image_classify-post-invalid.json", 400),
    ],
)
def test_sample_events(image_handler, event, status):
    result = image_handler(load_event(event), LambdaContext())
    assert result["statusCode"] == status, result["body"]
    body = json.loads(result["body"])
    if event == "image_classify-post.json":
        assert [s["label"] for s in body][:1] == ["3"] and len(body) == 3
    if event == "image_classify-post-png.json":
        assert body[0]["label"] == "7" and len(body) == 2


def test_maas_serve_takes_a_raw_png_body_over_http(model_dir, digits_dir, held_out):
    import requests

    from maas.tools.local.server import start

    assert digits_dir.parent == model_dir.parent  # the image function finds it beside the embedding model
    x, y = held_out
    running = start(port=0, model_dir=model_dir)
    try:
        url = f"{running.base_url}{PATH}?top_k=2"
        key = {"Authorization": f"Bearer {running.demo_key}"}
        picture = digits.render(x[2], 64, fmt="JPEG", resample="bilinear")
        ok = requests.post(url, data=picture, headers={**key, "Content-Type": "image/jpeg"}, timeout=30)
        assert ok.status_code == 200, ok.text
        assert [s["label"] for s in ok.json()][:1] == [str(y[2])] and len(ok.json()) == 2
        assert int(ok.headers["X-Quota-Remaining"]) < int(ok.headers["X-Quota-Limit"])  # metered
        as_json = requests.post(running.base_url + PATH, json={"inputs": [_b64(picture)]}, headers=key, timeout=30)
        assert as_json.status_code == 200 and as_json.json()[0][0]["label"] == str(y[2])
        bomb = requests.post(url, data=png_bomb(), headers={**key, "Content-Type": "image/png"}, timeout=30)
        assert bomb.status_code == 413 and set(bomb.json()) == {"error"}
        refused = requests.post(url, data=picture, headers={"Content-Type": "image/jpeg"}, timeout=30)
        assert refused.status_code == 401 and set(refused.json()) == {"error"}
    finally:
        running.stop()


def test_build_is_deterministic(digits_dir, tmp_path, capsys):
    """`maas models build digits-cnn` twice gives byte-identical files (fixed seeds, one thread)."""
    out = tmp_path / "digits-cnn"
    assert main(["models", "build", "digits-cnn", "--out", str(out)]) == 0
    assert "[6/6] writing package" in capsys.readouterr().err
    rebuilt, first = verify_package(out), verify_package(digits_dir)
    assert {k: v.sha256 for k, v in rebuilt.files.items()} == {k: v.sha256 for k, v in first.files.items()}


def test_build_fails_loudly_below_the_accuracy_target(tmp_path, monkeypatch):
    monkeypatch.setattr(digits, "EPOCHS", 1)  # fast; the point is the refusal
    with pytest.raises(BuildError) as exc:
        digits.build(tmp_path / "x", quiet=True, min_accuracy=1.01)
    assert "below the 1.01 target" in str(exc.value)
    assert not (tmp_path / "x").exists()
