"""The heavy-model inference package answers SageMaker's container contract with the real fp32 package.

Runs on the CPU provider by default (CI); MAAS_TEST_DEVICE=cuda runs the same golden tests on a GPU. Needs only
onnxruntime, tokenizers, numpy and pydantic (what the endpoint container installs): no boto3, no Powertools.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from maas.heavy.endpoint.server import start
from maas.heavy.endpoint.service import CPU, EndpointService, EndpointSettings

DEVICE = os.environ.get("MAAS_TEST_DEVICE", "cpu")
GOLDEN_ATOL = 1e-5 if DEVICE == "cpu" else 1e-3  # CUDA kernels sum in another order (TF32 is off by default)


@pytest.fixture(scope="module")
def server(fp32_model_dir):
    srv = start(EndpointSettings(model_source=str(fp32_model_dir), device=DEVICE), port=0, wait=True)
    yield srv
    srv.shutdown()
    srv.server_close()


def post(server, path: str, body: bytes, headers: dict | None = None) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=60)
    conn.request("POST", path, body, {"Content-Type": "application/json", **(headers or {})})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, dict(response.getheaders()), data


def get(server, path: str) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=60)
    conn.request("GET", path)
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    return response.status, body


def test_ping_reports_ready_and_the_provider_in_use(server):
    status, body = get(server, "/ping")
    assert status == 200 and body["status"] == "ready"
    assert body["device"] == ("CUDAExecutionProvider" if DEVICE == "cuda" else CPU)


def test_invocations_reproduce_the_golden_vectors_and_count_tokens(server, golden):
    """Through /invocations, sentences up to 256 tokens embed as sentence-transformers does; the units header
    is the tokenizer's own count."""
    tokenizer = server.service.embeddings.embedder.tokenizer
    counts = [len(tokenizer.encode(s).ids) for s in golden["sentences"]]
    short = [i for i, n in enumerate(counts) if n <= 256]
    body = json.dumps({"input": [golden["sentences"][i] for i in short]}).encode()
    status, headers, data = post(server, "/invocations", body)
    assert status == 200
    answer = json.loads(data)
    vectors = np.array([d["embedding"] for d in answer["data"]])
    np.testing.assert_allclose(vectors, np.array(golden["vectors"])[short], atol=GOLDEN_ATOL)
    assert headers["X-Amzn-SageMaker-Custom-Attributes"] == f"units={sum(counts[i] for i in short)}"
    assert answer["usage"]["prompt_tokens"] == sum(counts[i] for i in short)
    assert answer["model"] == "all-minilm-l6-v2-fp32"


def test_long_inputs_are_served_to_512_tokens(server):
    text = " ".join(["word"] * 700)
    status, headers, data = post(server, "/invocations", json.dumps({"input": text}).encode())
    assert status == 200 and headers["X-Amzn-SageMaker-Custom-Attributes"] == "units=512"
    status, _, data = post(server, "/invocations", json.dumps({"input": text, "truncate": False}).encode())
    assert status == 400 and json.loads(data)["error"]["code"] == "context_length_exceeded"


def test_v2_routes_answer_metadata_and_tensor_infer(server):
    embedder = server.service.embeddings.embedder
    status, _, data = post(server, "/invocations", b"", {"X-Amzn-SageMaker-Custom-Attributes": "route=v2-metadata"})
    meta = json.loads(data)
    assert status == 200 and meta["name"] == "all-minilm-l6-v2-fp32" and meta["versions"] == ["1"]
    ids = [e.ids for e in embedder.tokenize(["tensors in, tensors out", "a second row of equal.."])]
    width = max(map(len, ids))
    ids = [row + [0] * (width - len(row)) for row in ids]
    mask = [[1 if t else 0 for t in row] for row in ids]
    request = {
        "inputs": [
            {"name": "input_ids", "datatype": "INT64", "shape": [2, width], "data": sum(ids, [])},
            {"name": "attention_mask", "datatype": "INT64", "shape": [2, width], "data": sum(mask, [])},
        ]
    }
    attrs = {"X-Amzn-SageMaker-Custom-Attributes": "route=v2-infer;model=all-minilm-l6-v2-fp32;version=1"}
    status, headers, data = post(server, "/invocations", json.dumps(request).encode(), attrs)
    # the units are the tokens the rows run (the mask's ones), not the rows
    assert status == 200 and headers["X-Amzn-SageMaker-Custom-Attributes"] == f"units={sum(map(sum, mask))}"
    out = json.loads(data)["outputs"][0]
    assert out["shape"] == [2, 384]
    feed = {"input_ids": np.array(ids), "attention_mask": np.array(mask), "token_type_ids": np.zeros((2, width))}
    direct = embedder.session.run(None, {k: feed[k].astype(np.int64) for k in feed})[0]
    np.testing.assert_allclose(np.array(out["data"]).reshape(2, 384), direct, atol=1e-6)


@pytest.mark.parametrize(
    "body,attributes,status,code",
    [
        (b'{"input": []}', "", 400, "invalid_request"),
        (b"{not json", "", 400, "invalid_json"),
        (b'{"input": "caf\xe9"}', "", 400, "invalid_encoding"),  # never embedded with a replacement character
        (b'{"input": "a", "input": "b"}', "", 400, "invalid_json"),
        (b"", "", 400, "invalid_request"),
        (b'{"input": "x", "model": "all-minilm-l6-v2"}', "", 404, "model_not_found"),
        (b'{"input": "x"}', "route=explain", 404, "not_found"),
        (b'{"inputs": []}', "route=v2-infer;model=all-minilm-l6-v2-fp32;version=9", 404, "model_not_found"),
        (b'{"inputs": [{"name": "x", "datatype": "INT64", "shape": [1], "data": [1]}]}', "route=v2-infer", 400, None),
    ],
)
def test_bad_requests_are_4xx_in_the_error_shape(server, body, attributes, status, code):
    got, _, data = post(server, "/invocations", body, {"X-Amzn-SageMaker-Custom-Attributes": attributes})
    error = json.loads(data)["error"]
    assert got == status and set(error) >= {"message", "type", "code"}
    assert code is None or error["code"] == code


def test_oversized_bodies_are_refused_unread(fp32_model_dir):
    srv = start(EndpointSettings(model_source=str(fp32_model_dir), device="cpu", max_body_bytes=4096), port=0)
    try:
        status, _, data = post(srv, "/invocations", json.dumps({"input": "x" * 5000}).encode())
        assert status == 413 and json.loads(data)["error"]["code"] == "payload_too_large"
    finally:
        srv.shutdown()
        srv.server_close()


def test_a_package_that_fails_verification_never_turns_ready(fp32_model_dir, tmp_path):
    broken = tmp_path / "pkg"
    shutil.copytree(fp32_model_dir, broken)
    data = bytearray((broken / "tokenizer.json").read_bytes())
    data[-2] ^= 1  # same size, one bit changed: only the sha256 can tell
    (broken / "tokenizer.json").write_bytes(bytes(data))
    srv = start(EndpointSettings(model_source=str(broken), device="cpu"), port=0)
    try:
        status, body = get(srv, "/ping")
        assert status == 503 and body["status"] == "failed" and "sha256" in body["reason"]
        status, _, data = post(srv, "/invocations", b'{"input": "x"}')
        assert status == 503 and json.loads(data)["error"]["type"] == "service_unavailable_error"
    finally:
        srv.shutdown()
        srv.server_close()


def test_concurrent_requests_share_session_runs_and_get_their_own_rows(fp32_model_dir):
    """With a 50 ms batching window, 12 concurrent requests are merged into fewer session.run calls, and
    each gets exactly the rows it would get alone."""
    settings = EndpointSettings(model_source=str(fp32_model_dir), device=DEVICE, batch_wait_ms=50)
    service = EndpointService(settings)
    texts = [[f"request {i} asks about item {j}" for j in range(1 + i % 3)] for i in range(12)]
    alone = [service.embeddings.embedder._embedder.embed(t).vectors for t in texts]
    results: dict[int, np.ndarray] = {}
    barrier = threading.Barrier(len(texts))

    def call(i: int) -> None:
        barrier.wait()
        answer = service.invoke(json.dumps({"input": texts[i]}).encode(), {})
        results[i] = np.array([d["embedding"] for d in json.loads(answer.body)["data"]])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, vectors in enumerate(alone):
        np.testing.assert_allclose(results[i], vectors, atol=GOLDEN_ATOL)
    stats = service.embeddings.embedder.batcher.stats
    assert stats.requests == len(texts) and stats.batches < len(texts)


class _Context:
    """What the SageMaker PyTorch toolkit hands model_fn/input_fn/output_fn: request headers and response setters."""

    def __init__(self, headers: dict):
        self.headers, self.status, self.response_headers = headers, None, {}
        self.request_processor = [self]

    def get_request_properties(self):
        return self.headers

    def set_response_status(self, code):
        self.status = code

    def set_response_header(self, idx, key, value):
        self.response_headers[key] = value


def test_framework_container_entry_points(fp32_model_dir):
    from maas.heavy.endpoint import inference

    model = inference.model_fn(str(fp32_model_dir))
    ctx = _Context({"X-Amzn-SageMaker-Custom-Attributes": "route=embeddings"})
    data = inference.input_fn(b'{"input": ["one text"]}', "application/json", ctx)
    body = inference.output_fn(inference.predict_fn(data, model, ctx), "application/json", ctx)
    assert json.loads(body)["usage"]["prompt_tokens"] == 4 and ctx.response_headers == {
        "X-Amzn-SageMaker-Custom-Attributes": "units=4"
    }
    ctx = _Context({})
    body = inference.output_fn(inference.predict_fn(inference.input_fn(b"[]", "application/json", ctx), model), "", ctx)
    assert ctx.status == 400 and json.loads(body)["error"]["code"] == "invalid_request"


@pytest.mark.skipif(DEVICE != "cpu", reason="the archive is built and loaded once, on CPU")
def test_model_archive_loads_from_its_own_code_and_refuses_tampering(fp32_model_dir, tmp_path):
    """model.tar.gz unpacked as SageMaker does: code/ alone on the path imports maas from code/, checks
    SHA256SUMS and the package's sha256s, pulls in neither boto3 nor Powertools, and answers; a changed code file
    is refused before anything loads."""
    from maas.tools.layers import build_sagemaker_archive

    archive = build_sagemaker_archive(fp32_model_dir.name, models_dir=fp32_model_dir.parent, build_dir=tmp_path)
    model_dir = tmp_path / "opt-ml-model"
    with tarfile.open(archive) as tar:
        tar.extractall(model_dir, filter="data")
    probe = (
        "import json, sys; sys.path.insert(0, sys.argv[1] + '/code');"
        "import inference; from maas.heavy.endpoint import inference as i;"
        "m = inference.model_fn(sys.argv[1]); a = i.predict_fn((b'{\"input\": \"hi\"}', 'application/json', {}), m);"
        "print(json.dumps({'file': i.__file__, 'status': a.status, 'units': a.units,"
        "'boto3': 'boto3' in sys.modules, 'powertools': 'aws_lambda_powertools' in sys.modules}))"
    )
    env = {**os.environ, "PYTHONPATH": ""}
    run = subprocess.run([sys.executable, "-c", probe, str(model_dir)], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert Path(result["file"]).is_relative_to(model_dir / "code")
    assert result == {**result, "status": 200, "units": 3, "boto3": False, "powertools": False}
    (model_dir / "code" / "maas" / "tasks" / "v2.py").write_text("raise SystemExit('tampered')\n")
    run = subprocess.run([sys.executable, "-c", probe, str(model_dir)], capture_output=True, text=True, env=env)
    assert run.returncode != 0 and "SHA256SUMS" in run.stderr
