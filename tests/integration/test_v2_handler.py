"""functions/v2 (Open Inference Protocol / KServe v2) with the real int8 model: metadata, infer, bad tensors."""

from __future__ import annotations

import json
import time
import uuid

import numpy as np
import pytest

from maas.metering.store import Meter
from maas.tables import USAGE
from maas.tools.local.functions import load_handler
from tests.client import JSON_HEADERS, Client, assert_kserve_error
from tests.conftest import function_env, load_event

AUTH = {"principalId": "t-v2", "tenant_id": "t-v2", "plan": "enterprise", "key_prefix": "maas_v2000000"}
MODEL = "all-minilm-l6-v2"
TEXTS = ["How do I reset my password?", "Refunds take five business days.", "ok"]


@pytest.fixture(scope="session")
def v2_handler(aws, model_dir):
    return load_handler("v2", function_env(aws, model_dir))


@pytest.fixture(scope="session")
def v2(v2_handler) -> Client:
    return Client(v2_handler, authorizer=AUTH)


@pytest.fixture(scope="session")
def tensors(model_dir):
    return padded_tensors(model_dir)


def padded_tensors(model_dir):
    """The tokenizer's ids for TEXTS padded to the longest, as a KServe client sends them."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_padding()
    encs = tok.encode_batch(TEXTS)
    width = max(len(e.ids) for e in encs)
    ids = np.zeros((len(TEXTS), width), dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, e in enumerate(encs):
        ids[row, : len(e.ids)] = e.ids
        mask[row, : len(e.ids)] = 1
    return ids, mask


def _tensor(name, array, datatype="INT64"):
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": array.reshape(-1).tolist()}


def _inputs(ids, mask, with_types=True):
    inputs = [_tensor("input_ids", ids), _tensor("attention_mask", mask)]
    if with_types:
        inputs.append(_tensor("token_type_ids", np.zeros_like(ids)))
    return inputs


def _call(client, method, path, body=None, raw=None, headers=JSON_HEADERS, **kwargs):
    """METHOD PATH with ``body`` as JSON or ``raw`` bytes, declared JSON (as a KServe client sends every request).
    ``client``: a Client, or a handler called as AUTH's tenant."""
    client = client if isinstance(client, Client) else Client(client, authorizer=AUTH)
    return client.request(method, path, json=body, body=raw, headers=headers, **kwargs)


def _pair(resp):
    """(status, JSON body) of a response."""
    return resp.status, resp.json


def _parts(resp):
    """(status, JSON body, proxy result) of a response."""
    return resp.status, resp.json, resp.result


def test_health_and_server_metadata(v2):
    assert _pair(_call(v2, "GET", "/v2/health/ready")) == (200, {"ready": True})
    assert _pair(_call(v2, "GET", "/v2/health/live")) == (200, {"live": True})
    resp = _call(v2, "GET", "/v2")
    assert resp.status == 200 and resp.json["name"] == "maas"
    assert _pair(_call(v2, "GET", f"/v2/models/{MODEL}/ready")) == (200, {"name": MODEL, "ready": True})


def test_model_metadata_comes_from_the_manifest(v2, model_dir):
    from maas.inference.package import read_manifest

    manifest = read_manifest(model_dir)
    status, body = _pair(_call(v2, "GET", f"/v2/models/{MODEL}"))
    assert status == 200
    assert body == {
        "name": MODEL,
        "versions": [manifest.version],
        "platform": "onnxruntime_onnx",
        "inputs": [
            {"name": "input_ids", "datatype": "INT64", "shape": [-1, -1]},
            {"name": "attention_mask", "datatype": "INT64", "shape": [-1, -1]},
            {"name": "token_type_ids", "datatype": "INT64", "shape": [-1, -1]},
        ],
        "outputs": [{"name": "sentence_embedding", "datatype": "FP32", "shape": [-1, 384]}],
    }
    assert _call(v2, "GET", f"/v2/models/{MODEL}/versions/1").json == body
    assert_kserve_error(_call(v2, "GET", "/v2/models/nope"), 404, "model_not_found", message="'nope' does not exist")
    assert_kserve_error(_call(v2, "GET", f"/v2/models/{MODEL}/versions/7"), 404, message="does not exist")


def test_infer_round_trip_equals_the_embedder(v2, model_dir, tensors):
    from maas.inference.embedder import TextEmbedder
    from maas.inference.package import read_manifest

    ids, mask = tensors
    status, body = _pair(_call(v2, "POST", f"/v2/models/{MODEL}/infer", {"id": "r1", "inputs": _inputs(ids, mask)}))
    assert status == 200, body
    assert (body["model_name"], body["model_version"], body["id"]) == (MODEL, "1", "r1")
    [out] = body["outputs"]
    assert (out["name"], out["datatype"], out["shape"]) == ("sentence_embedding", "FP32", [len(TEXTS), 384])
    got = np.array(out["data"], dtype=np.float32).reshape(out["shape"])
    expected = TextEmbedder(model_dir, read_manifest(model_dir)).embed(TEXTS).vectors
    # The embedder pads per length bucket, the client padded to the longest: masked positions move ~1e-7.
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # token_type_ids may be left out (single-segment text: zeros); outputs may be named; versions may be pinned
    status, again = _pair(
        _call(
            v2,
            "POST",
            f"/v2/models/{MODEL}/versions/1/infer",
            {"inputs": _inputs(ids, mask, with_types=False), "outputs": [{"name": "sentence_embedding"}]},
        )
    )
    assert status == 200 and again["outputs"][0]["data"] == out["data"]
    assert "id" not in again


def test_nested_data_is_accepted_row_major(v2, tensors):
    ids, mask = tensors
    nested = [{**t, "data": np.array(t["data"]).reshape(t["shape"]).tolist()} for t in _inputs(ids, mask)]
    flat = _call(v2, "POST", f"/v2/models/{MODEL}/infer", {"inputs": _inputs(ids, mask)}).json
    status, body = _pair(_call(v2, "POST", f"/v2/models/{MODEL}/infer", {"inputs": nested}))
    assert status == 200 and body["outputs"] == flat["outputs"]


def fresh_tenant(aws):
    """(meter, tenant id, authorizer context) for a tenant no other test bills."""
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    auth = {**AUTH, "principalId": tenant, "tenant_id": tenant, "plan": "pro"}
    return Meter(aws.client("dynamodb"), USAGE.local_name), tenant, auth


def _bad(ids, mask):
    """(name, request body, status, message fragment) for each malformed request."""
    good = _inputs(ids, mask)
    n, w = ids.shape
    oob = ids.copy()
    oob[0, 1] = 10**6
    return [
        ("wrong datatype", {"inputs": [{**good[0], "datatype": "FP32"}, good[1]]}, 400, "datatype FP32"),
        ("int32", {"inputs": [{**good[0], "datatype": "INT32"}, good[1]]}, 400, "expects INT64"),
        ("3-d shape", {"inputs": [{**good[0], "shape": [n, w, 1]}, good[1]]}, 400, "2 dimensions"),
        ("zero dim", {"inputs": [{**good[0], "shape": [0, w]}, good[1]]}, 400, "expects [-1, -1]"),
        ("size mismatch", {"inputs": [{**good[0], "shape": [n, w - 1]}, good[1]]}, 400, "shape"),
        ("data too short", {"inputs": [{**good[0], "data": good[0]["data"][:-1]}, good[1]]}, 400, "'data' has"),
        ("float data", {"inputs": [{**good[0], "data": [0.5] * (n * w)}, good[1]]}, 400, "must be INT64 numbers"),
        ("string data", {"inputs": [{**good[0], "data": ["7"] * (n * w)}, good[1]]}, 400, "must be INT64 numbers"),
        ("huge int", {"inputs": [{**good[0], "data": [2**70] * (n * w)}, good[1]]}, 400, "must be INT64 numbers"),
        ("out of vocabulary", {"inputs": [_tensor("input_ids", oob), good[1]]}, 400, "outside the vocabulary"),
        ("negative id", {"inputs": [_tensor("input_ids", -ids), good[1]]}, 400, "outside the vocabulary"),
        ("mask not 0/1", {"inputs": [good[0], _tensor("attention_mask", mask * 2)]}, 400, "only 0 and 1"),
        ("missing mask", {"inputs": [good[0]]}, 400, "missing input tensor(s): attention_mask"),
        ("unknown input", {"inputs": [*good, {**good[0], "name": "pixel_values"}]}, 400, "unknown input"),
        ("twice", {"inputs": [*good, good[0]]}, 400, "given twice"),
        ("shapes differ", {"inputs": [good[0], _tensor("attention_mask", mask[:1])]}, 400, "all must match"),
        ("too long", {"inputs": _inputs(np.ones((1, 257), np.int64), np.ones((1, 257), np.int64))}, 400, "256"),
        ("too many rows", {"inputs": _inputs(np.ones((1025, 2), np.int64), np.ones((1025, 2), np.int64))}, 400, "1024"),
        ("unknown output", {"inputs": good, "outputs": [{"name": "logits"}]}, 400, "unknown output 'logits'"),
        ("no inputs", {}, 400, "missing required parameter: 'inputs'"),
        ("extra field", {"inputs": good, "temperature": 1}, 400, "unsupported parameter"),
        ("shape not ints", {"inputs": [{**good[0], "shape": ["a", 2]}, good[1]]}, 400, "shape"),
    ]


def test_bad_tensors_get_a_400_in_the_error_shape(v2, tensors):
    for name, body, status, fragment in _bad(*tensors):
        resp = _call(v2, "POST", f"/v2/models/{MODEL}/infer", body)
        assert resp.status == status, (name, resp.json)
        assert_kserve_error(resp, status, message=fragment)


def test_other_refusals(v2, tensors):
    ids, mask = tensors
    body = {"inputs": _inputs(ids, mask)}
    assert_kserve_error(_call(v2, "POST", "/v2/models/gpt-4/infer", body), 404, message="'gpt-4' does not exist")
    assert_kserve_error(_call(v2, "POST", f"/v2/models/{MODEL}/infer", raw=b"{nope"), 400, message="not valid JSON")
    no_key = _call(v2, "POST", f"/v2/models/{MODEL}/infer", body, authorizer=None)
    assert_kserve_error(no_key, 401, "invalid_api_key", message="API key")
    resp = _call(v2, "GET", f"/v2/models/{MODEL}/infer")
    assert_kserve_error(resp, 405, "method_not_allowed", message="use POST")
    assert resp.result["multiValueHeaders"]["Allow"] == ["POST"]
    big = {"inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [1, 1], "data": [1] * 800_000}]}
    assert_kserve_error(
        _call(v2, "POST", f"/v2/models/{MODEL}/infer", big), 413, "payload_too_large", message="exceeds"
    )


def test_infer_is_billed_once_per_request_in_the_tokens_it_ran(v2, aws, tensors, embeddings_handler):
    # GIVEN TEXTS as padded token tensors, and what /v1/embeddings bills for the same texts
    meter, tenant, auth = fresh_tenant(aws)
    embedded = Client(embeddings_handler, authorizer=auth).post("/v1/embeddings", json={"input": TEXTS})
    assert embedded.status == 200, embedded.body
    tokens = embedded.json["usage"]["prompt_tokens"]
    ids, mask = tensors
    assert tokens == int(mask.sum()) < ids.size  # the padding is not billed
    start, request_id = time.time(), str(uuid.uuid4())
    body = {"inputs": _inputs(*tensors)}
    # WHEN the same event arrives twice (a Lambda retry)
    for _ in range(2):
        path = f"/v2/models/{MODEL}/infer"
        resp = _call(v2, "POST", path, body, authorizer=auth, request_id=request_id)
        assert resp.status == 200 and "X-Quota-Remaining" in resp.result["multiValueHeaders"]
    # THEN it is billed once, in the tokens it ran: what /v1/embeddings bills for the same texts
    [event] = [e for e in meter.events(tenant, start - 1, time.time() + 1) if e.task == "v2-infer"]
    assert (event.model, event.task, event.units) == (MODEL, "v2-infer", tokens)
    assert _call(v2, "GET", f"/v2/models/{MODEL}", authorizer=auth).status == 200
    assert len(meter.events(tenant, start, time.time() + 1)) == 1  # metadata is not billed


def test_a_row_of_padding_is_billed_one_token(v2, aws):
    meter, tenant, auth = fresh_tenant(aws)
    start = time.time() - 1
    ids = np.array([[101, 2054, 102, 0], [0, 0, 0, 0]], dtype=np.int64)
    mask = np.array([[1, 1, 1, 0], [0, 0, 0, 0]], dtype=np.int64)
    resp = _call(v2, "POST", f"/v2/models/{MODEL}/infer", {"inputs": _inputs(ids, mask)}, authorizer=auth)
    assert resp.status == 200, resp.body
    [event] = meter.events(tenant, start, time.time() + 1)
    assert event.units == 3 + 1


def test_sample_events(v2):
    for name, status in [
        ("v2-infer-post.json", 200),
        ("v2-infer-post-invalid.json", 400),
        ("v2-model-get.json", 200),
        ("v2-ready-get.json", 200),
    ]:
        resp = v2.invoke(load_event(name))
        assert resp.status == status, (name, resp.body)


def test_not_ready_while_the_model_is_missing(tmp_path):
    handler = load_handler("v2", {"MAAS_MODEL_SOURCE": str(tmp_path / "absent"), "MAAS_METERING": "off"})
    assert_kserve_error(_call(Client(handler, AUTH), "GET", "/v2/health/ready"), 503, message="not loaded")
    assert _call(Client(handler, AUTH), "GET", "/v2/health/live").status == 200
    assert_kserve_error(_call(Client(handler, AUTH), "GET", f"/v2/models/{MODEL}"), 503, message="unavailable")


# ------------------------------------------------------------ the binary tensor data extension (Triton's)


def _binary_request(arrays: dict, **extra) -> tuple[bytes, dict]:
    """(body, headers) as tritonclient sends binary inputs: the JSON part, then each input's little-endian bytes."""
    inputs = [
        {"name": n, "datatype": "INT64", "shape": list(a.shape), "parameters": {"binary_data_size": a.nbytes}}
        for n, a in arrays.items()
    ]
    head = json.dumps({"inputs": inputs, **extra}).encode()
    body = head + b"".join(np.ascontiguousarray(a, dtype="<i8").tobytes() for a in arrays.values())
    # tritonclient sends no Content-Type: the JSON part's length says where the bytes start
    return body, {"Inference-Header-Content-Length": str(len(head))}


def _binary_answer(resp) -> tuple[dict, bytes]:
    assert resp.status == 200, resp.body[:300]
    assert resp.headers["Content-Type"] == "application/octet-stream"
    split = int(resp.headers["Inference-Header-Content-Length"])
    return json.loads(resp.body[:split]), resp.body[split:]


def test_binary_inputs_and_outputs_answer_what_json_tensors_do_and_bill_the_same_tokens(v2, aws, tensors):
    # GIVEN the same tensors as JSON and as binary data, from a fresh tenant
    meter, tenant, auth = fresh_tenant(aws)
    ids, mask = tensors
    start = time.time() - 1
    json_answer = _call(v2, "POST", f"/v2/models/{MODEL}/infer", {"inputs": _inputs(ids, mask)}).json["outputs"][0]
    body, headers = _binary_request({"input_ids": ids, "attention_mask": mask}, parameters={"binary_data_output": True})
    # WHEN they are sent with binary outputs asked for (tritonclient's defaults)
    resp = _call(v2, "POST", f"/v2/models/{MODEL}/infer", raw=body, headers=headers, authorizer=auth)
    # THEN the output's bytes are the JSON answer's values, float32 little-endian, and its JSON part says their size
    head, data = _binary_answer(resp)
    [out] = head["outputs"]
    assert out == {
        "name": "sentence_embedding",
        "datatype": "FP32",
        "shape": [len(TEXTS), 384],
        "parameters": {"binary_data_size": len(TEXTS) * 384 * 4},
    }
    vectors = np.frombuffer(data, dtype="<f4").reshape(out["shape"])
    np.testing.assert_allclose(vectors, np.array(json_answer["data"]).reshape(out["shape"]), atol=1e-8)
    # AND it is billed the tokens it ran, as JSON tensors are
    [event] = meter.events(tenant, start, time.time() + 1)
    assert (event.task, event.units) == ("v2-infer", int(mask.sum()))
    # an output may ask for JSON while the inputs are binary: a plain JSON answer
    body, headers = _binary_request(
        {"input_ids": ids, "attention_mask": mask},
        outputs=[{"name": "sentence_embedding", "parameters": {"binary_data": False}}],
    )
    resp = _call(v2, "POST", f"/v2/models/{MODEL}/infer", raw=body, headers=headers)
    assert resp.status == 200 and resp.json["outputs"][0]["data"] == json_answer["data"]


def test_malformed_binary_bodies_are_400s_in_the_kserve_shape_and_not_billed(v2, aws, tensors):
    meter, tenant, auth = fresh_tenant(aws)
    ids, mask = tensors
    start = time.time() - 1
    body, headers = _binary_request({"input_ids": ids, "attention_mask": mask})
    split = int(headers["Inference-Header-Content-Length"])
    head = json.loads(body[:split])
    cases = [
        ("length not a number", body, {"Inference-Header-Content-Length": "ten"}, "JSON part's length"),
        ("length past the body", body, {"Inference-Header-Content-Length": str(len(body) + 1)}, "JSON part's length"),
        ("length cuts the JSON", body, {"Inference-Header-Content-Length": str(split - 3)}, "not valid JSON"),
        ("bytes missing", body[:-8], headers, "does not fit"),
        ("bytes left over", body + b"\0" * 8, headers, "belong to no input"),
    ]
    bad = {**head["inputs"][0], "parameters": {"binary_data_size": 7}}
    odd = json.dumps({"inputs": [bad, head["inputs"][1]]}).encode()
    cases.append(("size not a multiple", odd + body[split:], {"Inference-Header-Content-Length": str(len(odd))}, "7"))
    both = json.dumps({"inputs": [{**head["inputs"][0], "data": [1]}, head["inputs"][1]]}).encode()
    cases.append(("data and bytes", both + body[split:], {"Inference-Header-Content-Length": str(len(both))}, "both"))
    for name, raw, hdrs, fragment in cases:
        resp = _call(v2, "POST", f"/v2/models/{MODEL}/infer", raw=raw, headers=hdrs, authorizer=auth)
        assert resp.status == 400, (name, resp.body)
        assert_kserve_error(resp, 400, message=fragment)
    assert meter.events(tenant, start, time.time() + 1) == []
