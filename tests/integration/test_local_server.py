"""`maas serve` over real HTTP on 127.0.0.1: the real embeddings handler, the OpenAI SDK, and the event conversion."""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import openai
import pytest
import requests

from maas.tools import paths
from maas.tools.local.server import MAX_BODY_BYTES, LocalApi, Route, start

DIMS = 384
MODEL = "all-minilm-l6-v2"
HTTP = requests.Session()  # carries the demo tenant's key, as a client of the deployed API would
KEY: dict[str, str] = {}


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname, parts.port


def _assert_error_shape(response: requests.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert {"message", "type", "code"} <= error.keys()
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    return error


# --- the real embeddings function ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_url():
    model_dir = paths.model_dir(MODEL)
    if not (model_dir / "manifest.json").is_file():
        from maas.tools.build.minilm import build

        build(model_dir, compare=False)
    running = start(port=0, model_dir=model_dir)
    assert _address(running.base_url)[0] == "127.0.0.1"
    assert running.demo_key.startswith("maas_")
    HTTP.headers["Authorization"] = f"Bearer {running.demo_key}"
    KEY["demo"] = running.demo_key
    yield running.base_url
    running.stop()


@pytest.fixture
def client(base_url):
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key=KEY["demo"], max_retries=0)


@pytest.mark.slow
def test_embeddings_over_http_are_unit_vectors_with_usage(base_url):
    response = HTTP.post(
        f"{base_url}/v1/embeddings", json={"model": MODEL, "input": ["hello world", "bonjour"]}, timeout=30
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == MODEL
    vectors = np.array([d["embedding"] for d in sorted(body["data"], key=lambda d: d["index"])])
    assert vectors.shape == (2, DIMS)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert body["usage"]["prompt_tokens"] > 0
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"]
    assert response.headers["x-amzn-RequestId"]


@pytest.mark.slow
def test_openai_sdk_embeddings_float(client):
    result = client.embeddings.create(model=MODEL, input=["a", "b"], encoding_format="float")

    assert [d.index for d in result.data] == [0, 1]
    for item in result.data:
        assert len(item.embedding) == DIMS
        assert all(isinstance(x, float) for x in item.embedding)
        assert abs(float(np.linalg.norm(item.embedding)) - 1.0) < 1e-4
    assert result.usage.prompt_tokens > 0


@pytest.mark.slow
def test_openai_sdk_default_encoding_decodes_to_the_float_vectors(base_url, client):
    raw = client.embeddings.with_raw_response.create(model=MODEL, input=["a", "b"])
    default = raw.parse()
    floats = client.embeddings.create(model=MODEL, input=["a", "b"], encoding_format="float")

    for d, f in zip(default.data, floats.data, strict=True):
        assert len(d.embedding) == DIMS
        np.testing.assert_allclose(d.embedding, f.embedding, atol=1e-6)
    sent = json.loads(raw.http_request.content)
    if sent.get("encoding_format") == "base64":  # what the SDK asks for by default, then decodes itself
        wire = json.loads(raw.content)
        decoded = np.frombuffer(base64.b64decode(wire["data"][0]["embedding"]), dtype="<f4")
        assert decoded.shape == (DIMS,)
        np.testing.assert_allclose(decoded, floats.data[0].embedding, atol=1e-6)


@pytest.mark.slow
def test_openai_sdk_lists_and_retrieves_the_model(client):
    models = list(client.models.list())

    assert [m.id for m in models][0] == MODEL  # the served model first, then every other model a caller can call
    assert client.models.retrieve(MODEL).id == MODEL


@pytest.mark.slow
def test_invalid_json_is_400_in_the_error_shape(base_url):
    response = HTTP.post(
        f"{base_url}/v1/embeddings", data=b'{"input": ', timeout=30, headers={"Content-Type": "application/json"}
    )

    _assert_error_shape(response, 400, "invalid_json")


@pytest.mark.slow
def test_unknown_route_is_404_in_the_error_shape(base_url):
    response = HTTP.get(f"{base_url}/v1/nothing-here", timeout=30)

    _assert_error_shape(response, 404, "route_not_found")
    # under /v2 (KServe v2's prefix) the protocol's own error body, the code in a header
    response = HTTP.get(f"{base_url}/v2/nothing-here", timeout=30)
    assert response.status_code == 404 and response.headers["X-Error-Code"] == "route_not_found"
    assert "/v2/nothing-here" in response.json()["error"]


@pytest.mark.slow
def test_swagger_ui_and_openapi_document_are_served(base_url):
    docs = HTTP.get(f"{base_url}/docs", timeout=30)
    spec = HTTP.get(f"{base_url}/openapi.json", timeout=30)

    assert docs.status_code == 200 and docs.headers["Content-Type"].startswith("text/html")
    assert spec.status_code == 200
    assert "/v1/embeddings" in spec.json()["paths"]


@pytest.mark.slow
def test_keep_alive_serves_several_requests_on_one_connection(base_url):
    with requests.Session() as session:
        session.headers.update(HTTP.headers)
        responses = [
            session.post(f"{base_url}/v1/embeddings", json={"input": f"text {i}"}, timeout=30) for i in range(3)
        ]
        responses += [session.get(f"{base_url}/v1/models", timeout=30), session.get(f"{base_url}/nope", timeout=30)]
        manager = session.get_adapter(base_url).poolmanager
        pools = [manager.pools[key] for key in manager.pools.keys()]

        assert [r.status_code for r in responses] == [200, 200, 200, 200, 404]
        assert all(r.headers.get("Connection", "").lower() != "close" for r in responses)
        assert [pool.num_connections for pool in pools] == [1]


@pytest.mark.slow
def test_body_over_the_limit_is_413_without_reading_it(base_url):
    # Only the headers are sent: the answer must come without the server waiting for the declared body.
    with socket.create_connection(_address(base_url), timeout=10) as sock:
        sock.sendall(
            f"POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {MAX_BODY_BYTES + 1}\r\n\r\n".encode()
        )
        reply = http.client.HTTPResponse(sock)
        reply.begin()
        body = json.loads(reply.read())

    assert reply.status == 413
    assert reply.getheader("Connection") == "close"
    assert body["error"]["code"] == "payload_too_large"


@pytest.mark.slow
def test_body_over_the_limit_sent_in_full_is_413(base_url):
    response = HTTP.post(
        f"{base_url}/v1/embeddings",
        data=b" " * (MAX_BODY_BYTES + 1),
        timeout=30,
        headers={"Content-Type": "application/json"},
    )

    _assert_error_shape(response, 413, "payload_too_large")


@pytest.mark.slow
def test_chunked_body_is_refused_in_the_error_shape(base_url):
    response = HTTP.post(
        f"{base_url}/v1/embeddings",
        data=iter([b'{"input": "a"}']),
        timeout=30,
        headers={"Content-Type": "application/json"},
    )

    _assert_error_shape(response, 411, "length_required")


# --- the conversion, through the server, with fake functions -----------------------------------------------

FAKE_FUNCTIONS = {
    "echo": """
        import json
        import os

        SETTING_AT_INIT = os.environ.get("ECHO_SETTING")

        def lambda_handler(event, context):
            body = {
                "event": event,
                "setting_at_init": SETTING_AT_INIT,
                "context": {
                    "function_name": context.function_name,
                    "aws_request_id": context.aws_request_id,
                    "memory_limit_in_mb": context.memory_limit_in_mb,
                    "invoked_function_arn": context.invoked_function_arn,
                    "remaining_ms": context.get_remaining_time_in_millis(),
                },
            }
            return {"statusCode": 201, "headers": {"Content-Type": "application/json", "X-Echo": "yes"},
                    "multiValueHeaders": {"X-Multi": ["a", "b"]}, "body": json.dumps(body)}
    """,
    "aws": """
        import json

        import boto3

        def lambda_handler(event, context):
            ddb = boto3.client("dynamodb")
            ddb.create_table(TableName="usage", BillingMode="PAY_PER_REQUEST",
                             KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                             AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
            body = {"tables": ddb.list_tables()["TableNames"], "endpoint": ddb.meta.endpoint_url}
            return {"statusCode": 200, "body": json.dumps(body)}
    """,
    "boom": """
        def lambda_handler(event, context):
            raise RuntimeError("secret internal detail")
    """,
    "malformed": """
        def lambda_handler(event, context):
            return None
    """,
    "serial": """
        import json
        import threading
        import time

        active = peak = 0
        guard = threading.Lock()

        def lambda_handler(event, context):
            global active, peak
            with guard:
                active += 1
                peak = max(peak, active)
            time.sleep(0.05)
            with guard:
                active -= 1
            return {"statusCode": 200, "body": json.dumps({"peak": peak})}
    """,
    "slow": """
        import json
        import time

        COPY = id(object())  # which loaded copy (container) answered

        def lambda_handler(event, context):
            if event["path"] == "/slow/long":
                time.sleep(4)
            return {"statusCode": 200, "body": json.dumps({"copy": COPY, "path": event["path"]})}
    """,
}
FAKE_ROUTES = (
    Route("POST", "/things", "echo"),
    Route("GET", "/things/{id}", "echo"),
    Route("GET", "/aws", "aws"),
    Route("GET", "/boom", "boom"),
    Route("GET", "/malformed", "malformed"),
    Route("GET", "/serial", "serial"),
    Route("GET", "/slow/long", "slow"),
    Route("GET", "/slow/models", "slow"),
)


@pytest.fixture(scope="module")
def fake_server(tmp_path_factory):
    functions_dir = tmp_path_factory.mktemp("functions")
    for name, source in FAKE_FUNCTIONS.items():
        (functions_dir / name).mkdir()
        (functions_dir / name / "app.py").write_text(textwrap.dedent(source))
    api = LocalApi(
        FAKE_ROUTES,
        functions_dir=functions_dir,
        env={"echo": {"ECHO_SETTING": "from-function-env"}},
        default_function="echo",
    )
    running = start(port=0, api=api)
    yield running
    running.stop()


def _echo(base_url: str, method: str, target: str, headers: list[tuple[str, str]], body: bytes = b"") -> dict:
    conn = http.client.HTTPConnection(*_address(base_url), timeout=10)
    try:
        conn.putrequest(method, target)
        for k, v in headers:
            conn.putheader(k, v)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        assert response.status == 201
        assert response.getheader("X-Echo") == "yes"
        assert response.getheader("X-Multi") == "a, b"
        return json.loads(response.read())
    finally:
        conn.close()


def test_request_becomes_the_rest_api_proxy_event(fake_server):
    body = json.dumps({"input": "héllo"}).encode()
    headers = [("Content-Type", "application/json"), ("X-Custom", "42"), ("X-Dup", "1"), ("X-Dup", "2")]

    out = _echo(fake_server.base_url, "POST", "/things?a=1&b=x%20y&a=2&empty=", headers, body)
    event = out["event"]

    assert event["httpMethod"] == "POST"
    assert event["path"] == "/things"
    assert event["resource"] == "/things"
    assert event["pathParameters"] is None
    assert event["queryStringParameters"] == {"a": "2", "b": "x y", "empty": ""}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": ["x y"], "empty": [""]}
    assert event["headers"]["X-Custom"] == "42"
    assert event["headers"]["Content-Type"] == "application/json"
    assert event["headers"]["X-Dup"] == "2"
    assert event["multiValueHeaders"]["X-Dup"] == ["1", "2"]
    assert "Connection" not in event["headers"]
    assert event["body"] == body.decode()
    assert event["isBase64Encoded"] is False
    ctx = event["requestContext"]
    assert ctx["httpMethod"] == "POST" and ctx["resourcePath"] == "/things"
    # The URL the client called has no stage prefix (as with `sam local`): the Swagger UI's server URL reads it
    assert ctx["stage"] == "local" and ctx["path"] == "/things"
    assert ctx["identity"]["sourceIp"] == "127.0.0.1"
    assert ctx["requestId"]
    lambda_ctx = out["context"]
    assert lambda_ctx["function_name"] == "echo"
    assert lambda_ctx["aws_request_id"] and lambda_ctx["aws_request_id"] != ctx["requestId"]
    assert lambda_ctx["invoked_function_arn"].endswith(":function:echo")
    assert lambda_ctx["memory_limit_in_mb"] > 0
    assert 0 < lambda_ctx["remaining_ms"] <= 29_000


def test_path_parameters_are_decoded_and_the_resource_is_the_template(fake_server):
    event = _echo(fake_server.base_url, "GET", "/things/a%40b", [])["event"]

    assert event["resource"] == "/things/{id}"
    assert event["path"] == "/things/a%40b"
    assert event["pathParameters"] == {"id": "a@b"}
    assert event["body"] is None
    assert event["queryStringParameters"] is None


def test_binary_body_is_base64_encoded(fake_server):
    payload = bytes(range(256))

    event = _echo(fake_server.base_url, "POST", "/things", [("Content-Type", "application/octet-stream")], payload)[
        "event"
    ]

    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == payload


def test_unrouted_request_goes_to_the_default_function_as_proxy_resource(fake_server):
    event = _echo(fake_server.base_url, "DELETE", "/not/a/route", [])["event"]

    assert event["resource"] == "/{proxy+}"
    assert event["pathParameters"] == {"proxy": "not/a/route"}
    assert event["httpMethod"] == "DELETE"


def test_function_env_is_set_at_init_and_not_leaked(fake_server):
    out = _echo(fake_server.base_url, "POST", "/things", [])

    assert out["setting_at_init"] == "from-function-env"
    assert "ECHO_SETTING" not in os.environ


def test_boto3_in_a_handler_talks_to_the_local_moto(fake_server):
    response = requests.get(f"{fake_server.base_url}/aws", timeout=30)

    assert response.status_code == 200, response.text
    body = response.json()
    assert "usage" in body["tables"]  # alongside the tables the emulator creates for maas
    assert body["endpoint"] == fake_server.moto_url
    assert urlsplit(fake_server.moto_url).hostname == "127.0.0.1"


def test_handler_exception_is_502_without_a_traceback(fake_server):
    response = requests.get(f"{fake_server.base_url}/boom", timeout=30)

    error = _assert_error_shape(response, 502, "bad_gateway")
    assert "secret" not in response.text and "Traceback" not in response.text
    assert error["type"] == "server_error"


def test_malformed_handler_result_is_502(fake_server):
    _assert_error_shape(requests.get(f"{fake_server.base_url}/malformed", timeout=30), 502, "bad_gateway")


def test_one_function_handles_one_request_at_a_time(fake_server):
    url = f"{fake_server.base_url}/serial"
    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = [r.status_code for r in pool.map(lambda _: requests.get(url, timeout=30), range(6))]

    assert statuses == [200] * 6
    assert requests.get(url, timeout=30).json()["peak"] == 1


def test_stop_restores_the_environment(tmp_path: Path):
    (tmp_path / "echo").mkdir()
    (tmp_path / "echo" / "app.py").write_text(textwrap.dedent(FAKE_FUNCTIONS["echo"]))
    before = os.environ.get("AWS_ENDPOINT_URL")

    running = start(
        port=0, api=LocalApi([Route("POST", "/things", "echo")], functions_dir=tmp_path, default_function="echo")
    )
    during = os.environ.get("AWS_ENDPOINT_URL")
    running.stop()

    assert during == running.moto_url
    assert os.environ.get("AWS_ENDPOINT_URL") == before
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{running.base_url}/things", timeout=5)


def test_a_long_request_does_not_hold_up_the_other_routes_of_its_function(fake_server):
    # GIVEN a request of a function that takes 4 s, in flight
    base = fake_server.base_url
    with ThreadPoolExecutor(max_workers=1) as pool:
        long_call = pool.submit(requests.get, f"{base}/slow/long", timeout=30)
        while not _in_flight(fake_server, "slow"):
            time.sleep(0.01)
        # WHEN another route of the same function is called meanwhile
        quick = requests.get(f"{base}/slow/models", timeout=30)
        # THEN it is answered while the long one is still running, by another copy of the function (a container)
        assert quick.status_code == 200
        assert not long_call.done()
        assert long_call.result().status_code == 200
    assert quick.json()["copy"] != long_call.result().json()["copy"]
    assert fake_server.httpd.api.functions["slow"].instances == 2


def _in_flight(running, name: str) -> bool:
    """Whether a request of function ``name`` holds one of its copies now."""
    fn = running.httpd.api.functions[name]
    with fn._free:
        return len(fn._idle) < fn.instances


@pytest.mark.parametrize("method", ["BREW", "PROPFIND", "TRACE"])
def test_an_unknown_method_is_405_in_the_error_shape_with_allow(fake_server, method):
    # GIVEN a method no route has
    conn = http.client.HTTPConnection(*_address(fake_server.base_url), timeout=10)
    try:
        # WHEN it is sent to a routed path
        conn.request(method, "/things")
        response = conn.getresponse()
        body = json.loads(response.read())
    finally:
        conn.close()
    # THEN it is a 405 in the error shape (not http.server's 501) naming the methods the path has
    assert response.status == 405
    assert body["error"]["code"] == "method_not_allowed" and method in body["error"]["message"]
    assert response.getheader("Allow") == "POST"


def test_a_burst_of_connections_is_answered_not_reset(fake_server):
    # GIVEN 200 clients that connect at the same moment (the listen backlog of http.server is 5)
    clients = 200
    barrier = threading.Barrier(clients)
    address = _address(fake_server.base_url)

    def call(_) -> int:
        barrier.wait()
        conn = http.client.HTTPConnection(*address, timeout=60)
        try:
            conn.request("GET", "/things/x")
            return conn.getresponse().status
        finally:
            conn.close()

    # WHEN they all send a request
    with ThreadPoolExecutor(max_workers=clients) as pool:
        statuses = list(pool.map(call, range(clients)))
    # THEN every one is answered
    assert statuses == [201] * clients


@pytest.mark.slow
def test_the_heavy_model_endpoint_process_dies_with_maas_serve_under_kill_9():
    if not (paths.model_dir("all-minilm-l6-v2-fp32") / "manifest.json").is_file():
        pytest.skip("models/all-minilm-l6-v2-fp32 is not built: maas serve starts no endpoint process")
    # GIVEN `maas serve` running, with its heavy-model endpoint process
    serve = subprocess.Popen(
        [sys.executable, "-m", "maas", "serve", "--port", "0", "--no-build"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        for line in serve.stdout:
            if line.startswith("maas is serving on"):
                break
        children = _children(serve.pid)
        assert children, "maas serve started no child process"
        # WHEN it is killed with SIGKILL (no chance to clean up)
        os.kill(serve.pid, signal.SIGKILL)
        serve.wait(timeout=10)
        # THEN its children are gone within a few seconds
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in children if _alive(pid)]
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper is dead: it holds no memory)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
