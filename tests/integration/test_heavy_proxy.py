"""functions/heavy_proxy: the SageMaker-served model behind the same contract as the Lambda routes.

The endpoint is the real inference package in a local process (what `maas serve` runs in place of SageMaker),
reached by the proxy's real botocore client through the process's InvokeEndpoint stand-in. Failure modes the
local process cannot show (timeouts, throttling, a crashing container, a cold inference component) come from
a stub InvokeEndpoint server answering as the service does.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import numpy as np
import pytest

from maas.heavy.endpoint.service import EndpointService, EndpointSettings
from maas.settings import names as c
from maas.tools.local.endpoint import proxy_env, start_local_endpoint
from maas.tools.local.functions import LambdaContext, load_handler
from tests.client import assert_error, assert_kserve_error
from tests.conftest import function_env, load_event
from tests.integration.test_batch_jobs import _results, _units, env  # noqa: F401 (fixtures)
from tests.integration.test_v2_handler import (
    _bad,
    _call,
    _inputs,
    _pair,
    _parts,
    _tensor,
    fresh_tenant,
    padded_tensors,
)

HEAVY = "all-minilm-l6-v2-fp32"
INFER = f"/v2/models/{HEAVY}/infer"


@pytest.fixture(scope="module")
def endpoint(fp32_model_dir):
    running = start_local_endpoint(fp32_model_dir, HEAVY)
    yield running
    running.stop()


def proxy_handler(aws, model_dir, url, **overrides):
    variables = {**function_env(aws, model_dir), **proxy_env(HEAVY, url), **overrides}
    return load_handler("heavy_proxy", variables)


@pytest.fixture(scope="module")
def proxy(aws, fp32_model_dir, endpoint):
    return proxy_handler(aws, fp32_model_dir, endpoint.url)


@pytest.fixture(scope="module")
def tensors(fp32_model_dir):
    return padded_tensors(fp32_model_dir)


@pytest.fixture(scope="module")
def reference(fp32_model_dir):
    """The inference package called directly, in this process."""
    return EndpointService(EndpointSettings(model_source=str(fp32_model_dir), device="cpu"))


def test_infer_through_the_proxy_equals_the_package_called_directly(proxy, reference, tensors):
    body = {"id": "r1", "inputs": _inputs(*tensors)}
    status, answer, result = _parts(_call(proxy, "POST", INFER, body))
    assert status == 200 and answer["model_name"] == HEAVY and answer["id"] == "r1"
    direct = json.loads(
        reference.invoke(json.dumps(body).encode(), {"route": "v2-infer", "model": HEAVY, "version": None}).body
    )
    assert answer == direct
    assert result["multiValueHeaders"]["Content-Type"] == ["application/json"]


def test_metadata_and_ready_come_from_the_endpoint(proxy):
    status, meta, _ = _parts(_call(proxy, "GET", f"/v2/models/{HEAVY}"))
    assert status == 200 and meta["name"] == HEAVY and meta["platform"] == "onnxruntime_onnx"
    assert _call(proxy, "GET", f"/v2/models/{HEAVY}/versions/1").json == meta
    assert _pair(_call(proxy, "GET", f"/v2/models/{HEAVY}/ready")) == (200, {"name": HEAVY, "ready": True})
    assert_kserve_error(_call(proxy, "GET", f"/v2/models/{HEAVY}/versions/3"), 404, message="does not exist")


def test_the_v2_contract_tests_give_the_same_answers_as_the_lambda_route(proxy, tensors):
    """Every malformed request of the Lambda v2 route's contract tests, sent to the heavy route: the same status
    and the same error (the heavy package reads 512 tokens, so only the length limit differs)."""
    cases = [case for case in _bad(*tensors) if case[0] != "too long"]
    long = np.ones((1, 513), np.int64)
    cases.append(("too long", {"inputs": _inputs(long, long)}, 400, "maximum is 512"))
    # the endpoint answers JSON only: binary outputs are refused with the setting that avoids them
    cases.append(
        ("binary", {"inputs": _inputs(*tensors), "parameters": {"binary_data_output": True}}, 400, "binary_data=False")
    )
    for name, body, status, fragment in cases:
        resp = _call(proxy, "POST", INFER, body)
        assert resp.status == status, (name, resp.json)
        assert_kserve_error(resp, status, message=fragment)
    assert_kserve_error(_call(proxy, "POST", INFER, raw=b"{nope"), 400, message="not valid JSON")
    binary = {"Inference-Header-Content-Length": "2"}
    assert_kserve_error(
        _call(proxy, "POST", INFER, raw=b"{}", headers=binary), 400, "unsupported", message="binary_data=False"
    )
    assert_kserve_error(_call(proxy, "POST", INFER, {"inputs": []}, authorizer=None), 401, message="API key")
    assert_kserve_error(_call(proxy, "GET", INFER), 405, "method_not_allowed", message="use POST")


def test_embeddings_route_is_forwarded_and_billed_in_tokens(proxy, aws, reference):
    meter, tenant, auth = fresh_tenant(aws)
    start = time.time() - 1
    body = {"model": HEAVY, "input": ["a long document " * 100, "short"]}
    status, answer, result = _parts(_call(proxy, "POST", "/v1/embeddings", body, authorizer=auth))
    assert status == 200 and answer["model"] == HEAVY and len(answer["data"]) == 2
    assert answer == json.loads(reference.invoke(json.dumps(body).encode(), {"route": "embeddings"}).body)
    [event] = meter.events(tenant, start, time.time() + 1)
    assert (event.model, event.task, event.units) == (HEAVY, "embeddings", answer["usage"]["prompt_tokens"])
    assert answer["usage"]["prompt_tokens"] > 256  # long inputs are embedded past the Lambda package's 256
    assert_error(_call(proxy, "POST", "/v1/embeddings", {"input": []}, authorizer=auth), 400, message="empty")
    assert_error(_call(proxy, "POST", "/v1/embeddings", {"model": "gpt-4", "input": "x"}), 404, message="gpt-4")
    assert len(meter.events(tenant, start, time.time() + 1)) == 1


def test_metered_exactly_once_per_request_and_never_for_refusals(proxy, aws, tensors):
    meter, tenant, auth = fresh_tenant(aws)
    start, request_id = time.time() - 1, str(uuid.uuid4())
    body = {"inputs": _inputs(*tensors)}
    for _ in range(2):  # the same event twice (a Lambda retry): billed once
        status, _, result = _parts(_call(proxy, "POST", INFER, body, authorizer=auth, request_id=request_id))
        assert status == 200 and "X-Quota-Remaining" in result["multiValueHeaders"]
    for _ in range(2):  # a client retry with the same Idempotency-Key: billed once
        headers = {"Content-Type": "application/json", "Idempotency-Key": "k-1"}
        assert _call(proxy, "POST", INFER, body, authorizer=auth, headers=headers).status == 200
    assert _call(proxy, "POST", INFER, {"inputs": [body["inputs"][0]]}, authorizer=auth).status == 400
    assert _call(proxy, "GET", f"/v2/models/{HEAVY}", authorizer=auth).status == 200
    events = meter.events(tenant, start, time.time() + 1)
    tokens = int(tensors[1].sum())  # the attention mask's ones: the tokens the endpoint ran, not its padding
    assert sorted((e.model, e.task, e.units) for e in events) == [(HEAVY, "v2-infer", tokens)] * 2


def test_payloads_over_the_endpoint_limit_are_413_before_any_call(aws, fp32_model_dir):
    stub = StubRuntime([])
    try:
        handler = proxy_handler(aws, fp32_model_dir, stub.url)
        values = [1] * (c.ENDPOINT_MAX_PAYLOAD_BYTES // 2)  # "1," per value: just over the 6 MiB limit
        body = {"inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [1, len(values)], "data": values}]}
        assert_kserve_error(_call(handler, "POST", INFER, body), 413, message="exceeds the 6291456-byte limit")
        assert stub.calls == 0
    finally:
        stub.stop()


def test_sample_events(proxy):
    for name, status in [
        ("heavy_proxy-infer-post.json", 200),
        ("heavy_proxy-infer-post-invalid.json", 400),
        ("heavy_proxy-model-get.json", 200),
    ]:
        result = proxy(load_event(name), LambdaContext())
        assert result["statusCode"] == status, (name, result["body"])


# ------------------------------------------------------------------ failure modes, from a stub InvokeEndpoint


class StubRuntime:
    """Answers InvokeEndpoint with the given (status, error type, body, delay s) in turn, the last one forever."""

    def __init__(self, answers):
        self.answers, self.calls = list(answers), 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                stub.calls += 1
                status, kind, body, delay = stub.answers[min(stub.calls, len(stub.answers)) - 1]
                time.sleep(delay)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if kind and kind != NO_UNITS:
                    self.send_header("x-amzn-ErrorType", kind)
                if status == 200 and kind != NO_UNITS:
                    self.send_header("X-Amzn-SageMaker-Custom-Attributes", "units=3")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, address: None  # the proxy hung up on a slow answer: expected
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


NO_UNITS = "no-units"  # a 200 without the billable units: a broken endpoint, not a free call
MODEL_5XX = {"message": "Received server error (500) from primary", "OriginalStatusCode": 500, "OriginalMessage": "x"}
FAILURES = [
    ("missing", [(400, "ValidationError", {"message": "Endpoint e of account 1 not found."}, 0)], "endpoint_missing"),
    ("cold", [(429, "ModelNotReadyException", {"message": "Model is not ready"}, 0)], "endpoint_cold"),
    (
        "scaled to zero",
        [(400, "ValidationError", {"message": "Inference Component has no capacity to process this request."}, 0)],
        "endpoint_cold",
    ),
    ("container 5xx", [(424, "ModelError", MODEL_5XX, 0)], "endpoint_failed"),
    ("service 503", [(503, "ServiceUnavailable", {"message": "busy"}, 0)], "endpoint_failed"),
    ("throttled", [(400, "ThrottlingException", {"message": "Rate exceeded"}, 0)], "endpoint_failed"),
    ("too slow", [(200, None, {"late": True}, 3.0)], "endpoint_timeout"),
    ("answer without units", [(200, NO_UNITS, {"outputs": []}, 0)], "endpoint_failed"),
]


@pytest.mark.parametrize("name,answers,code", FAILURES, ids=[f[0] for f in FAILURES])
def test_endpoint_failures_are_503_in_the_error_shape_quickly_and_not_billed(aws, fp32_model_dir, name, answers, code):
    stub = StubRuntime(answers)
    meter, tenant, auth = fresh_tenant(aws)
    try:
        handler = proxy_handler(aws, fp32_model_dir, stub.url, **{c.ENV_ENDPOINT_TIMEOUT_S: "0.5"})
        start = time.time()
        body = {"inputs": [_tensor("input_ids", np.array([[101, 102]])), _tensor("attention_mask", np.ones((1, 2)))]}
        status, answer, result = _parts(_call(handler, "POST", INFER, body, authorizer=auth))
        elapsed = time.time() - start
    finally:
        stub.stop()
    assert status == 503, answer
    # KServe v2's error shape: the message in the body, the code in a header
    assert isinstance(answer["error"], str) and answer["error"]
    assert code is None or result["multiValueHeaders"]["X-Error-Code"] == [code]
    assert elapsed < 5  # bounded: 2 attempts x 0.5 s read timeout, plus backoff
    assert stub.calls <= c.DEFAULT_ENDPOINT_ATTEMPTS
    if code == "endpoint_cold":
        assert result["multiValueHeaders"]["Retry-After"] == ["60"]
    assert meter.events(tenant, start - 1, time.time() + 1) == []


def test_container_4xx_is_passed_on_unchanged(aws, fp32_model_dir):
    error = {"error": {"message": "Bad tensor.", "type": "invalid_request_error", "code": "invalid_tensor"}}
    answer = {"message": "Received client error (400)", "OriginalStatusCode": 400, "OriginalMessage": json.dumps(error)}
    stub = StubRuntime([(424, "ModelError", answer, 0)])
    try:
        handler = proxy_handler(aws, fp32_model_dir, stub.url)
        status, body, result = _parts(
            _call(handler, "POST", INFER, {"inputs": [_tensor("input_ids", np.array([[101, 102]]))]})
        )
    finally:
        stub.stop()
    # the container's message and code, in the /v2 route's (KServe v2) error shape; a ModelError is never retried
    assert (status, body) == (400, {"error": "Bad tensor."}) and stub.calls == 1
    assert result["multiValueHeaders"]["X-Error-Code"] == ["invalid_tensor"]


def test_unreachable_endpoint_is_503_at_once(aws, fp32_model_dir):
    handler = proxy_handler(aws, fp32_model_dir, None)  # no endpoint process: a closed port
    start = time.time()
    status, body, result = _parts(
        _call(handler, "POST", INFER, {"inputs": [_tensor("input_ids", np.array([[101, 102]]))]})
    )
    assert status == 503 and "cannot be reached" in body["error"] and time.time() - start < 5
    assert result["multiValueHeaders"]["X-Error-Code"] == ["endpoint_unreachable"]
    assert _call(handler, "GET", f"/v2/models/{HEAVY}/ready").status == 503


def test_embeddings_function_forwards_the_heavy_model_and_serves_its_own(aws, model_dir, endpoint, reference):
    """OpenAI clients reach the heavy model through POST /v1/embeddings unchanged: the embeddings function sends
    that model's requests to its endpoint (billed once, in the endpoint's tokens) and serves its own package."""
    from maas.tools.local.endpoint import forwarding_env

    variables = {**function_env(aws, model_dir), **forwarding_env(proxy_env(HEAVY, endpoint.url))}
    handler = load_handler("embeddings", variables)
    meter, tenant, auth = fresh_tenant(aws)
    start = time.time() - 1
    body = {"model": f"{HEAVY}@latest", "input": ["hello " * 300]}
    status, answer, _ = _parts(_call(handler, "POST", "/v1/embeddings", body, authorizer=auth))
    assert status == 200 and answer["model"] == HEAVY and answer["usage"]["prompt_tokens"] == 302
    assert answer == json.loads(reference.invoke(json.dumps(body).encode(), {"route": "embeddings"}).body)
    status, local, _ = _parts(
        _call(handler, "POST", "/v1/embeddings", {**body, "model": "all-minilm-l6-v2"}, authorizer=auth)
    )
    assert status == 200 and local["model"] == "all-minilm-l6-v2" and local["usage"]["prompt_tokens"] == 256
    events = meter.events(tenant, start, time.time() + 1)
    assert sorted((e.model, e.units) for e in events) == [("all-minilm-l6-v2", 256), (HEAVY, 302)]


def test_a_malformed_forwarding_setting_is_refused_at_init(aws, model_dir):
    from maas.settings.base import SettingsError

    with pytest.raises(SettingsError, match="MAAS_HEAVY_MODELS"):
        load_handler("embeddings", {**function_env(aws, model_dir), c.ENV_HEAVY_MODELS: '["not", "a", "map"]'})


@pytest.fixture
def jobs_env(request):
    """test_batch_jobs' `env`: a job bucket, a fresh usage table, an active tenant."""
    return request.getfixturevalue("env")


def test_a_batch_job_for_the_heavy_model_runs_on_its_endpoint_in_order_billed_once(jobs_env, endpoint, reference):
    """POST /v1/jobs with the heavy model: the S3 worker sends each part to the endpoint in slices under the 6 MiB
    limit, writes one line per input in order (bad lines reported), bills each part once in the endpoint's
    tokens (long lines up to 512), and a redelivered event changes nothing."""
    from maas.heavy.client import HeavyEndpoint
    from maas.jobs import store as j
    from maas.jobs.store import JobStore
    from maas.settings.functions import HeavyProxySettings
    from maas.tables import JOBS
    from maas.tools.local.batch import event_for_object

    texts = [f"line {i} " + "of a rather long document " * (i % 7) * 20 for i in range(240)]
    lines = [json.dumps(t) for t in texts]
    lines[100] = "{not json"
    job_id, tenant = j.new_job_id(), jobs_env["tenant"].tenant_id
    JobStore(jobs_env["worker"]().jobs.ddb, JOBS.local_name).create(tenant, job_id, HEAVY, "jsonl", "base64", "maas_t")
    key = j.input_key(tenant, job_id, "jsonl")
    jobs_env["s3"].put_object(Bucket=jobs_env["bucket"], Key=key, Body=("\n".join(lines) + "\n").encode())
    event = event_for_object(jobs_env["s3"], jobs_env["bucket"], key)
    settings = HeavyProxySettings(
        endpoint_name=endpoint.name, model_name=HEAVY, runtime_url=endpoint.url, metering="off", timeout_s=60
    )
    client = jobs_env["s3"]  # an emulator client: its region and credentials are the test's
    sagemaker = boto3.client(
        "sagemaker-runtime",
        region_name=client.meta.region_name,
        endpoint_url=endpoint.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    worker = jobs_env["worker"](chunk_lines=100, remote={HEAVY: HeavyEndpoint(settings, client=sagemaker)})

    out = worker.handle_s3_event(event, LambdaContext(timeout_s=900))

    assert out["jobs"][0]["status"] == j.COMPLETED
    results = _results(jobs_env, job_id)
    assert [r["line"] for r in results] == list(range(1, 241)) and "error" in results[100]
    good = [i for i in range(240) if i != 100]
    tokenizer = reference.embeddings.embedder.tokenizer
    expected = [len(tokenizer.encode(texts[i]).ids) for i in good]
    assert [results[i]["tokens"] for i in good] == expected and max(expected) > 256
    direct = reference.embeddings.embedder.embed([texts[i] for i in (0, 6, 239)]).vectors
    for row, i in enumerate((0, 6, 239)):
        got = np.frombuffer(base64.b64decode(results[i]["embedding"]), "<f4")
        np.testing.assert_allclose(got, direct[row], atol=1e-5)
    units, events = _units(jobs_env)
    assert (units, events) == (sum(expected), 3)
    assert {e.model for e in jobs_env["meter"].events(tenant, 0, 4e9)} == {HEAVY}
    again = worker.handle_s3_event(json.loads(json.dumps(event)), LambdaContext(timeout_s=900))
    assert again["jobs"][0]["note"] == "duplicate" and _units(jobs_env) == (units, events)


def test_remote_slices_stay_under_the_payload_limit():
    from maas.heavy.client import RemoteEmbedder

    remote = RemoteEmbedder(endpoint=None, max_texts=3, max_bytes=100)
    texts = ["a" * 40, "b" * 40, "c", "d", "e", "f" * 200, "g"]
    slices = remote.slices(texts)
    assert [t for part in slices for t in part] == texts  # nothing lost, order kept
    assert all(len(part) <= 3 for part in slices)
    assert all(sum(len(json.dumps(t)) + 1 for t in part) <= 100 or len(part) == 1 for part in slices)
    assert remote.slices([]) == []
