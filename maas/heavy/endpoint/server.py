"""The endpoint's HTTP server: SageMaker's container contract, and locally a stand-in for its runtime API.

Container contract (what SageMaker calls on port 8080 of a bring-your-own container, `serve` argument):
    GET  /ping          200 once the model is loaded and verified, 503 before (SageMaker waits for 200)
    POST /invocations   the request; CustomAttributes say the route (maas.heavy.endpoint.service)

Runtime stand-in (``runtime_api=True``, what `maas serve` and the tests use in place of AWS): the
sagemaker-runtime InvokeEndpoint operation, `POST /endpoints/{name}/invocations`, answered the way the service
answers it, so the proxy runs its real botocore client against it: an unknown endpoint is a ValidationError
(400), a model still loading is ModelNotReadyException (429), and a container answer other than 2xx becomes
ModelError (424) carrying OriginalStatusCode and OriginalMessage.

The server loads the model in the background after it starts listening, as a container must answer /ping while
it starts. One thread per connection; concurrent embeddings requests meet in the dynamic batcher.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from maas.errors import error_json
from maas.heavy.attributes import ATTRIBUTES_HEADER as ATTRIBUTES
from maas.heavy.attributes import format_attributes, parse_attributes
from maas.heavy.endpoint.service import EndpointService, EndpointSettings

JSON = "application/json"
RUNTIME_PATH = re.compile(r"^/endpoints/(?P<name>[^/]+)/invocations$")
ACCOUNT = "123456789012"
MODEL_ERROR = "ModelError:http://internal.amazon.com/coral/com.amazon.sagemaker/"

log = logging.getLogger("maas.heavy.endpoint")


class EndpointServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        settings: EndpointSettings,
        *,
        endpoint_name: str | None = None,
        runtime_api: bool = False,
    ):
        super().__init__(address, _Handler)
        self.settings = settings
        self.endpoint_name = endpoint_name
        self.runtime_api = runtime_api
        self.service: EndpointService | None = None
        self.load_error: str | None = None
        self.loaded = threading.Event()

    def load(self) -> None:
        """Load and verify the model (in the caller's thread); /ping turns 200 when this succeeds."""
        started = time.perf_counter()
        try:
            self.service = EndpointService(self.settings, log)
            if self.service.embeddings.load_error:
                self.load_error = self.service.embeddings.load_error
        except Exception as exc:  # reported by /ping and every invocation, never a crash loop
            self.load_error = f"{type(exc).__name__}: {exc}"
        finally:
            self.loaded.set()
        if self.load_error:
            log.error("model failed to load: %s", self.load_error)
        else:
            log.info("model loaded in %.2f s on %s", time.perf_counter() - started, self.service.device)

    def ready(self) -> bool:
        return self.service is not None and self.service.ping()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Buffered writes: status line, headers and body leave in one send (flushed after each request), so a
    # small answer never waits on Nagle's algorithm for the client's delayed ACK (a 40 ms stall).
    wbufsize = 1 << 16
    server: EndpointServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        if self.path == "/ping":
            ok = self.server.ready()
            body = {"status": "ready" if ok else "loading" if not self.server.loaded.is_set() else "failed"}
            if ok:
                body["device"] = self.server.service.device
            elif self.server.load_error:
                body["reason"] = self.server.load_error
            return self._send(200 if ok else 503, json.dumps(body).encode())
        if self.path == "/stats" and self.server.service is not None:
            embedder = self.server.service.embeddings.embedder
            batcher = getattr(embedder, "batcher", None)
            stats = batcher.stats.as_dict() if batcher is not None else {}
            return self._send(200, json.dumps({"device": self.server.service.device, "batcher": stats}).encode())
        self._send(404, error_json("Not found.", "not_found_error", "not_found"))

    def do_POST(self) -> None:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            return self._send(
                411, error_json("Content-Length is required.", "invalid_request_error", "length_required")
            )
        if int(length) > self.server.settings.max_body_bytes:
            self.close_connection = True  # the body is not read
            return self._refuse_too_large(int(length))
        body = self.rfile.read(int(length))
        if self.path == "/invocations":
            return self._invocations(body)
        m = RUNTIME_PATH.match(self.path)
        if m and self.server.runtime_api:
            return self._runtime_invoke(m["name"], body)
        self._send(404, error_json("Not found.", "not_found_error", "not_found"))

    def _refuse_too_large(self, size: int) -> None:
        limit = self.server.settings.max_body_bytes
        message = f"Request body of {size} bytes exceeds the endpoint's {limit}-byte limit."
        if self.server.runtime_api and RUNTIME_PATH.match(self.path):
            # InvokeEndpoint refuses an oversized Body itself, before any container sees it
            return self._runtime_error(400, "ValidationError", message)
        self._send(413, error_json(message, "invalid_request_error", "payload_too_large"))

    def _answer(self, body: bytes):
        if not self.server.loaded.is_set():
            return None
        service = self.server.service
        if service is None or self.server.load_error:
            reason = self.server.load_error or "not loaded"
            return 503, error_json(
                f"The model failed to load: {reason}", "service_unavailable_error", "model_unavailable"
            )
        attributes = parse_attributes(self.headers.get(ATTRIBUTES))
        return service.invoke(body, attributes, self.headers.get("Content-Type"))

    def _invocations(self, body: bytes) -> None:
        answer = self._answer(body)
        if answer is None:
            return self._send(503, error_json("The model is loading.", "service_unavailable_error", "model_loading"))
        if isinstance(answer, tuple):
            return self._send(*answer)
        headers = {ATTRIBUTES: format_attributes({"units": answer.units})} if answer.status == 200 else {}
        self._send(answer.status, answer.body, headers)

    def _runtime_invoke(self, name: str, body: bytes) -> None:
        if self.server.endpoint_name and name != self.server.endpoint_name:
            return self._runtime_error(400, "ValidationError", f"Endpoint {name} of account {ACCOUNT} not found.")
        answer = self._answer(body)
        if answer is None:
            return self._runtime_error(429, "ModelNotReadyException", f"Model for endpoint {name} is not ready.")
        status, payload = answer if isinstance(answer, tuple) else (answer.status, answer.body)
        if status != 200:
            kind = "client" if status < 500 else "server"
            return self._runtime_error(
                424,
                MODEL_ERROR,
                f'Received {kind} error ({status}) from primary with message "{payload.decode(errors="replace")}".',
                OriginalStatusCode=status,
                OriginalMessage=payload.decode(errors="replace"),
                LogStreamArn=f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/aws/sagemaker/Endpoints/{name}",
            )
        self._send(200, payload, {ATTRIBUTES: format_attributes({"units": answer.units})})

    def _runtime_error(self, status: int, error_type: str, message: str, **fields) -> None:
        body = json.dumps({"message": message, **fields}).encode()
        self._send(status, body, {"x-amzn-ErrorType": error_type})

    def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", JSON)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        log.debug("%s " + format, self.address_string(), *args)


def start(
    settings: EndpointSettings,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    endpoint_name: str | None = None,
    runtime_api: bool = False,
    wait: bool = True,
) -> EndpointServer:
    """Listen at once, load the model (in the background unless ``wait``), serve in a daemon thread."""
    server = EndpointServer((host, port), settings, endpoint_name=endpoint_name, runtime_api=runtime_api)
    threading.Thread(target=server.serve_forever, name="maas-endpoint-http", daemon=True).start()
    if wait:
        server.load()
    else:
        threading.Thread(target=server.load, name="maas-endpoint-load", daemon=True).start()
    return server


def serve(
    settings: EndpointSettings, host: str, port: int, *, endpoint_name: str | None = None, runtime_api: bool = False
) -> int:
    """Run until interrupted; prints one `ready` line (with the URL) once the model is loaded."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    server = start(settings, host, port, endpoint_name=endpoint_name, runtime_api=runtime_api, wait=True)
    state = "ready" if server.ready() else f"failed: {server.load_error}"
    device = server.service.device if server.service else "none"
    print(f"endpoint {state} on http://{host}:{server.server_port} ({device})", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()
    return 0
