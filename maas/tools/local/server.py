"""`maas serve`: the real Lambda handlers behind a local HTTP server, with moto standing in for AWS.

Each HTTP request becomes the API Gateway REST proxy event production sends (maas.tools.local.apigw), goes
to the function the route table names, and the function's proxy result is written back. Handlers are
imported from functions/<name>/app.py by file path, as the Lambda runtime does, with their environment
set first. Each loaded copy is one Lambda container: it handles one request at a time, and a request that finds
every copy of its function busy gets a new one (a cold start), up to INSTANCES_PER_FUNCTION, so that one long call
does not hold up the function's other routes.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from maas.api.gateway import gateway_error
from maas.api.routes import FUNCTION_ENV, HEAVY_FUNCTION, Route, RouteMatcher, api_routes
from maas.errors import Unauthorized, error_json
from maas.settings import names as c
from maas.settings.names import AUTHORIZER_CACHE_TTL_S
from maas.tables import API_KEYS, TENANTS, USAGE
from maas.tenancy.keys import credential
from maas.tenancy.plans import default_plans
from maas.tools import paths
from maas.tools.build import BUILDS
from maas.tools.local.apigw import make_event, response_parts
from maas.tools.local.batch import LOCAL_JOB_BUCKET, start_batch_workers
from maas.tools.local.emulator import AwsEmulator, aws_env, table_env
from maas.tools.local.endpoint import (
    forwarding_env,
    heavy_models,
    proxy_env,
    start_if_built,
)
from maas.tools.local.functions import FUNCTION_MODELS, REGION, LambdaContext, load_handler, patched_environ
from maas.tools.local.streams import StreamDriver

# API Gateway's payload limit; the function's own, smaller limit (MAAS_MAX_BODY_BYTES) applies after it.
MAX_BODY_BYTES = 10 * 1024 * 1024
INVOKE_TIMEOUT_S = 29.0  # API Gateway's integration timeout: what get_remaining_time_in_millis counts down from
IDLE_TIMEOUT_S = 60.0  # a keep-alive connection with no request for this long is closed
BODY_TIMEOUT_S = 10.0  # a body that stops arriving before its Content-Length is a 408, not a held thread
# Concurrent copies of one function (Lambda's containers): each costs the function's init memory (the model).
INSTANCES_PER_FUNCTION = 4
MEMORY_MB = 1024
JSON = "application/json"
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


# The API's routes (maas.api.routes), with the catalog's heavy models. A request that matches none goes to
# DEFAULT_FUNCTION as a `/{proxy+}` resource, so its resolver answers 404 in the API's error shape.
ROUTES: tuple[Route, ...] = api_routes(heavy_models())
# The variables that let a function send a heavy model's requests to its endpoint (embeddings, batch workers).
FORWARDING_VARIABLES = (c.ENV_HEAVY_MODELS, c.ENV_SAGEMAKER_RUNTIME_URL, c.ENV_ENDPOINT_ATTEMPTS)


AUTHORIZER_FUNCTION = "authorizer"
DEFAULT_FUNCTION = "embeddings"
PROXY_RESOURCE = "/{proxy+}"


def served_versions(model_dir: Path) -> str:
    """MAAS_MODEL_SOURCE of the embeddings function: ``model_dir`` and every other built version of its catalog
    model (as the stack lists them), so `name@version` of an older version answers locally too; for an embeddings
    model also every built embedding tier (all-minilm-l6-v2-fast, -static), so `model` can name the tier."""
    from maas.inference.catalog import default_catalog
    from maas.inference.package import read_manifest

    try:
        name = read_manifest(model_dir).name
    except (OSError, ValueError):
        return str(model_dir)
    sources = [str(model_dir)]
    catalog = default_catalog()
    own = catalog.latest(name)
    # Its versions first, then the other Lambda-served models of its task (the embedding tiers), as the stack does.
    entries = [e for e in catalog.entries if e.name == name] + [
        e for e in catalog.entries if own is not None and e.name != name and e.task == own.task == "embeddings"
    ]
    for entry in entries:
        folder = paths.model_dir(entry.package or entry.name)
        if entry.runtime == "sagemaker" or folder == Path(model_dir):
            continue
        try:
            if read_manifest(folder).version == entry.version:
                sources.append(str(folder))
        except (OSError, ValueError):
            continue  # not built: that version is not served locally
    return ",".join(sources)


def function_env(model_dir: Path, endpoints: Mapping[str, str | None] | None = None) -> dict[str, dict[str, str]]:
    """Each function's environment variables, as the stack sets them in production. ``endpoints``: heavy model
    -> the URL of its local endpoint process (None: not running, so its routes answer 503)."""
    tables = table_env()
    heavy, forwarded = {}, {}
    for model in heavy_models()[:1]:  # one proxy function per model in the stack; `maas serve` runs the first
        heavy[HEAVY_FUNCTION] = {**tables, **proxy_env(model, (endpoints or {}).get(model))}
        forwarded = forwarding_env(heavy[HEAVY_FUNCTION])
    tasks = {}
    for function, needs in FUNCTION_ENV.items():
        # The image package beside the embedding package (models/digits-cnn); 503 until it is built.
        folder = Path(model_dir).parent / FUNCTION_MODELS[function] if function in FUNCTION_MODELS else model_dir
        source = served_versions(folder) if needs.all_versions else str(folder)
        tasks[function] = {**tables, c.ENV_MODEL_SOURCE: source, **(forwarded if needs.forwards_heavy else {})}
    return {
        **heavy,
        **tasks,
        "usage": tables,
        "jobs": {**tables, c.ENV_JOB_BUCKET: LOCAL_JOB_BUCKET},
        "batches": {**tables, c.ENV_JOB_BUCKET: LOCAL_JOB_BUCKET},
        AUTHORIZER_FUNCTION: tables,
    }


Handler = Callable[[dict, object], dict]
# Loading sets the function's variables process-wide while its module initialises: one load at a time.
_LOADING = threading.Lock()


class _Function:
    """A function's warm copies, as Lambda's containers: a request takes an idle one, or loads a new one while
    there are fewer than ``limit``, or waits for one to be free. A copy serves one request at a time."""

    def __init__(self, name: str, load: Callable[[], Handler], limit: int = INSTANCES_PER_FUNCTION):
        self.name, self._load, self.limit = name, load, limit
        self._idle = [self._load_one()]
        self._count = 1
        self._free = threading.Condition()

    def _load_one(self) -> Handler:
        with _LOADING:
            return self._load()

    @property
    def instances(self) -> int:
        """How many copies are loaded."""
        return self._count

    @contextmanager
    def instance(self) -> Iterator[Handler]:
        """An idle copy for one request, given back after it."""
        with self._free:
            while not self._idle and self._count >= self.limit:
                self._free.wait()
            handler = self._idle.pop() if self._idle else None
            if handler is None:
                self._count += 1
        if handler is None:
            try:
                handler = self._load_one()
            except BaseException:
                with self._free:
                    self._count -= 1
                    self._free.notify()
                raise
        try:
            yield handler
        finally:
            with self._free:
                self._idle.append(handler)
                self._free.notify()

    def __call__(self, event: dict, context) -> dict:
        with self.instance() as handler:
            return handler(event, context)


class LocalApi:
    """The route table and the loaded handlers: HTTP request in, API Gateway event to the handler, response out."""

    def __init__(
        self,
        routes: Sequence[Route] = ROUTES,
        *,
        functions_dir: Path = paths.FUNCTIONS_DIR,
        env: Mapping[str, Mapping[str, str]] | None = None,
        default_function: str = DEFAULT_FUNCTION,
        stage: str = "local",
        gateway: LocalGateway | None = None,
    ):
        self.matcher = RouteMatcher(routes)
        self.functions_dir = Path(functions_dir)
        self.env = {name: dict(values) for name, values in (env or {}).items()}
        self.default_function = default_function
        self.stage = stage
        self.functions: dict[str, _Function] = {}
        self.gateway = gateway

    def function_names(self) -> list[str]:
        names = [route.function for route, _ in self.matcher.routes] + [self.default_function]
        if self.gateway is not None:
            names.append(self.gateway.function)
        return list(dict.fromkeys(names))

    def load(self) -> None:
        """Import every routed function's handler, once, as a Lambda container's init would."""
        for name in self.function_names():
            if name not in self.functions:
                self.functions[name] = self._load(name)

    def _load(self, name: str) -> _Function:
        return _Function(name, lambda: load_handler(name, self.env.get(name, {}), self.functions_dir))

    def route(self, method: str, path: str) -> tuple[str, str, dict[str, str] | None, bool]:
        """(function, resource, path parameters, behind the authorizer) for a request; path parameters are
        URL-decoded, as API Gateway's."""
        found = self.matcher.match(method, path)
        if found is not None:
            route, params = found
            return route.function, route.path, params, route.auth
        return self.default_function, PROXY_RESOURCE, {"proxy": unquote(path.lstrip("/"))}, False

    def handle(
        self, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes, source_ip: str = "127.0.0.1"
    ) -> tuple[int, dict[str, str], bytes]:
        """One HTTP request -> (status, headers, body), through the routed function's handler."""
        url = urlsplit(target)
        path = url.path or "/"
        name, resource, path_params, needs_auth = self.route(method, path)
        single: dict[str, str] = {}
        multi: dict[str, list[str]] = {}
        for k, v in headers:
            single[k] = v
            multi.setdefault(k, []).append(v)
        request_id = str(uuid.uuid4())
        event = make_event(
            method,
            path,
            query=url.query,
            headers=single,
            body=body,
            stage=self.stage,
            resource=resource,
            source_ip=source_ip,
            request_id=request_id,
            stage_in_path=False,  # clients call http://127.0.0.1:PORT/v1/..., as with `sam local`
        )
        if single:
            event["multiValueHeaders"] = multi
        event["pathParameters"] = path_params
        fn = self.functions.get(name)
        if fn is None:
            raise KeyError(f"function {name!r} is not loaded; call load() first")
        context = LambdaContext(function_name=name, timeout_s=INVOKE_TIMEOUT_S, memory_limit_in_mb=MEMORY_MB)
        gateway_headers = {"x-amzn-RequestId": request_id}
        if needs_auth and self.gateway is not None:
            refused = self.gateway.authorize(self, event)
            if refused is not None:
                status, body_obj = refused
                return status, {"Content-Type": JSON, **gateway_headers}, json.dumps(body_obj).encode()
        try:
            result = fn(event, context)
            status, out_headers, out_body = response_parts(result)
        except Exception:
            # API Gateway answers 502 when the function fails; the traceback stays in the server's log.
            logging.getLogger(__name__).exception("function %s failed on %s %s", name, method, path)
            return (
                502,
                {"Content-Type": JSON, **gateway_headers},
                error_json("The function failed; see the server log.", "server_error", "bad_gateway"),
            )
        return status, {**out_headers, **gateway_headers}, out_body


class LocalGateway:
    """What API Gateway does before a function runs: the REQUEST authorizer (with its result cache) and
    usage-plan throttling per usage identifier, answering in the gateway responses' error shape."""

    def __init__(self, function: str = AUTHORIZER_FUNCTION, cache_ttl_s: float = AUTHORIZER_CACHE_TTL_S, plans=None):
        self.function = function
        self.cache_ttl_s = cache_ttl_s
        self.plans = plans if plans is not None else default_plans()
        self._cache: dict[tuple, tuple[float, dict | None]] = {}
        self._buckets: dict[str, tuple[float, float]] = {}  # usage key -> (tokens, last refill)
        self._lock = threading.Lock()

    def _policy(self, api: LocalApi, event: dict) -> dict | None:
        """The authorizer's result for this request's key headers (cached), or None for 401."""
        try:  # cached on exactly the credential the authorizer decides from (maas.tenancy.keys.credential)
            cache_key = credential(event.get("headers"))
        except Unauthorized:
            return None
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(cache_key)
            if hit and now - hit[0] < self.cache_ttl_s:
                return hit[1]
        arn = f"arn:aws:execute-api:{REGION}:123456789012:local/{api.stage}/{event['httpMethod']}{event['path']}"
        request = {
            "type": "REQUEST",
            "methodArn": arn,
            "resource": event["resource"],
            "path": event["path"],
            "httpMethod": event["httpMethod"],
            "headers": event["headers"],
            "multiValueHeaders": event["multiValueHeaders"],
            "queryStringParameters": event["queryStringParameters"],
            "requestContext": {**event["requestContext"], "authorizer": None},
        }
        fn = api.functions[self.function]
        try:
            result = fn(request, LambdaContext(function_name=self.function))
        except Exception as exc:
            if str(exc) != "Unauthorized":
                logging.getLogger(__name__).exception("authorizer failed")
            result = None
        with self._lock:
            self._cache[cache_key] = (now, result)
        return result

    def _throttled(self, usage_key: str, plan_name: str) -> bool:
        plan = self.plans.get(plan_name)
        if plan is None:
            return False
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(usage_key, (float(plan.burst_limit), now))
            tokens = min(float(plan.burst_limit), tokens + (now - last) * plan.rate_limit)
            allowed = tokens >= 1
            self._buckets[usage_key] = (tokens - 1 if allowed else tokens, now)
            return not allowed

    def authorize(self, api: LocalApi, event: dict) -> tuple[int, dict] | None:
        """Fill requestContext.authorizer, or return the gateway's (status, error body)."""
        result = self._policy(api, event)
        if result is None:
            return gateway_error("UNAUTHORIZED")
        context = result.get("context") or {}
        if result["policyDocument"]["Statement"][0]["Effect"] != "Allow":
            return gateway_error("ACCESS_DENIED", context)
        if self._throttled(result.get("usageIdentifierKey", ""), context.get("plan", "")):
            return gateway_error("THROTTLED")
        event["requestContext"]["authorizer"] = {"principalId": result["principalId"], **context}
        return None


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_S
    disable_nagle_algorithm = True  # TCP_NODELAY: a response is never held back waiting for an ACK
    server: LocalHttpServer

    _started = 0.0

    def parse_request(self) -> bool:
        self._started = time.perf_counter()
        return super().parse_request()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # http.server's own refusals (malformed request line, unknown method...) in the API's error shape.
        self.close_connection = True
        if code == HTTPStatus.NOT_IMPLEMENTED:  # a method no route has: what API Gateway answers, 405
            self._method_not_allowed()
            return
        text = message or (self.responses.get(code, ("Bad request",))[0])
        self._write(code, {"Content-Type": JSON}, error_json(f"{text}.", "invalid_request_error", "bad_request"))

    def _method_not_allowed(self) -> None:
        path = urlsplit(self.path or "/").path
        allowed = sorted({r.method for r, compiled in self.server.api.matcher.routes if compiled.match(path)})
        allowed = allowed or list(HTTP_METHODS)
        method = (self.command or "")[:20]
        body = error_json(
            f"{method} is not allowed on {path[:200]}; use {', '.join(allowed)}.",
            "invalid_request_error",
            "method_not_allowed",
        )
        self._write(405, {"Content-Type": JSON, "Allow": ", ".join(allowed)}, body)

    def handle_expect_100(self) -> bool:
        # Refuse an oversized body before the client sends it.
        if self._body_length() is None:
            return False
        return super().handle_expect_100()

    def _refuse(self, status: int, message: str, code: str) -> None:
        self.close_connection = True  # the unread body would otherwise be parsed as the next request
        self._write(status, {"Content-Type": JSON}, error_json(message, "invalid_request_error", code))

    def _body_length(self) -> int | None:
        """The declared body length, or None after answering the request with an error."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._refuse(411, "Chunked request bodies are not supported; send Content-Length.", "length_required")
            return None
        raw = self.headers.get("Content-Length")
        if raw is None:
            return 0
        try:
            length = int(raw)
            if length < 0:
                raise ValueError(raw)
        except ValueError:
            self._refuse(400, "Invalid Content-Length header.", "invalid_content_length")
            return None
        limit = self.server.max_body_bytes
        if length > limit:
            self._refuse(413, f"Request body exceeds the {limit}-byte limit.", "payload_too_large")
            return None
        return length

    def _dispatch(self) -> None:
        length = self._body_length()
        if length is None:
            return
        try:
            self.connection.settimeout(self.server.body_timeout_s)
            body = self.rfile.read(length) if length else b""
        except TimeoutError:
            message = f"The request body did not arrive within {self.server.body_timeout_s:g} s of its headers."
            self._refuse(408, message, "request_timeout")
            return
        finally:
            self.connection.settimeout(self.timeout)
        if len(body) < length:
            self.close_connection = True
            return
        # "Connection" is hop-by-hop: API Gateway does not forward it to the function.
        headers = [(k, v) for k, v in self.headers.items() if k.lower() != "connection"]
        status, out_headers, out_body = self.server.api.handle(
            self.command, self.path, headers, body, source_ip=self.client_address[0]
        )
        self._write(status, out_headers, out_body)

    def _write(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.send_response(status)
        for k, v in headers.items():
            if k.lower() not in ("content-length", "connection", "transfer-encoding", "date", "server"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        # Headers and body leave in ONE write (end_headers would send the headers alone first): with a kept-alive
        # connection, a second small write waits on the client's delayed ACK (~40 ms) unless Nagle is off; both
        # are done here.
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD":
            self._headers_buffer.append(body)
        self.flush_headers()
        ms = (time.perf_counter() - self._started) * 1000 if self._started else 0.0
        path = (getattr(self, "path", "") or "").split("?", 1)[0]
        print(f"{self.command or '-'} {path or '-'} {status} {ms:.1f}ms", file=sys.stderr, flush=True)

    def log_request(self, code="-", size="-") -> None:
        pass  # _write prints the access line, with the latency

    def log_error(self, format: str, *args) -> None:
        if args and isinstance(args[-1], TimeoutError):
            return  # an idle keep-alive connection closed after IDLE_TIMEOUT_S: routine, not an error
        super().log_error(format, *args)

    def log_message(self, format: str, *args) -> None:
        print(f"{self.address_string()} {format % args}", file=sys.stderr, flush=True)


for _method in HTTP_METHODS:
    setattr(_RequestHandler, f"do_{_method}", _RequestHandler._dispatch)


class LocalHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default listen backlog is 5: a burst of SDK clients opening connections at once was reset.
    request_queue_size = 1024

    def __init__(
        self,
        address: tuple[str, int],
        api: LocalApi,
        max_body_bytes: int = MAX_BODY_BYTES,
        body_timeout_s: float = BODY_TIMEOUT_S,
    ):
        self.api = api
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        super().__init__(address, _RequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name with getfqdn, which can hang without DNS.
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def handle_error(self, request, client_address) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError):  # the client went away mid-response: one line, no traceback
            print(f"{client_address[0]} connection closed by client: {exc}", file=sys.stderr, flush=True)
            return
        super().handle_error(request, client_address)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@dataclass
class Running:
    """A started local service: the API's base URL, the emulator's URL, a demo key, and how to stop."""

    base_url: str
    moto_url: str
    httpd: LocalHttpServer
    thread: threading.Thread
    _cleanup: ExitStack
    demo_key: str | None = None
    demo_tenant: str | None = None
    endpoints: dict | None = None  # heavy model -> its local endpoint process's URL (None: not running)

    def stop(self) -> None:
        """Stop serving, close the socket, restore the environment, stop the emulator."""
        self.httpd.shutdown()
        self.thread.join(timeout=5)
        self._cleanup.close()


DEMO_TENANT = "demo"
DEMO_PLAN = "pro"


def tenant_store(emulator: AwsEmulator):
    """The emulator's tenants and keys, with the packaged plans."""
    from maas.tenancy.store import TenantStore

    return TenantStore(emulator.client("dynamodb"), TENANTS.local_name, API_KEYS.local_name, default_plans())


def seed_demo_tenant(emulator: AwsEmulator) -> str:
    """Create the demo tenant (plan pro) in the emulator and return a fresh key for it."""
    from maas.tenancy.store import TenancyError

    store = tenant_store(emulator)
    try:
        store.create_tenant("Demo tenant", DEMO_PLAN, tenant_id=DEMO_TENANT)
    except TenancyError:
        pass  # already there: a second key is fine
    key, _ = store.create_key(DEMO_TENANT)
    return key


def new_tenant(moto_url: str, name: str, plan: str) -> tuple[str, str]:
    """A new tenant on ``plan`` in a running server's emulator, and a key for it: (tenant id, key)."""
    emulator = AwsEmulator()
    emulator.url = moto_url
    store = tenant_store(emulator)
    tenant = store.create_tenant(name, plan)
    return tenant.tenant_id, store.create_key(tenant.tenant_id)[0]


def start(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    api: LocalApi | None = None,
    model_dir: Path | None = None,
    with_moto: bool = True,
    max_body_bytes: int = MAX_BODY_BYTES,
    emulator_port: int = 0,
    heavy: bool = True,
) -> Running:
    """Start the AWS emulator (tables, demo tenant), load the handlers and serve HTTP in a background thread.

    `api` defaults to the project's route table, with the authorizer in front, and the model package at
    `model_dir`. The AWS variables stay set (process-wide, as boto3 reads them when a client is made) until
    `stop()` restores them. ``heavy``: run each built SageMaker-served package in a local endpoint process.
    """
    cleanup = ExitStack()
    moto_url, demo_key, endpoints = "", None, {}
    try:
        if api is None:
            endpoints = start_heavy_endpoints(cleanup) if heavy else {}
            env = function_env(model_dir or paths.model_dir(), endpoints)
            api = LocalApi(env=env, gateway=LocalGateway() if with_moto else None)
        if with_moto:
            emulator = AwsEmulator(emulator_port)
            moto_url = emulator.start()
            cleanup.callback(emulator.stop)
            cleanup.enter_context(patched_environ(aws_env(moto_url)))
            emulator.create_tables()
            demo_key = seed_demo_tenant(emulator)
            # The job bucket's S3 events and the requests queue, delivered to batch_s3 / batch_sqs.
            forwarded = {k: v for k, v in api.env.get("embeddings", {}).items() if k in FORWARDING_VARIABLES}
            cleanup.callback(start_batch_workers(emulator, served_versions(model_dir or paths.model_dir()), forwarded))
            # The usage table's stream, delivered to the aggregator function every second (usage visible at once).
            aggregator = load_handler("aggregator", {**aws_env(moto_url), **table_env()})
            stream = StreamDriver(
                emulator.client("dynamodb"),
                emulator.client("dynamodbstreams"),
                USAGE.local_name,
                aggregator,
                start_at="LATEST",  # the table is new: nothing before now is this server's to aggregate
            )
            stream.position()
            cleanup.callback(stream.start().stop)
        api.load()
        httpd = LocalHttpServer((host, port), api, max_body_bytes)
        cleanup.callback(httpd.server_close)
    except BaseException:
        cleanup.close()
        raise
    thread = threading.Thread(target=httpd.serve_forever, name="maas-local-http", daemon=True)
    thread.start()
    base_url = f"http://{_url_host(httpd.server_name)}:{httpd.server_port}"
    tenant = DEMO_TENANT if demo_key else None
    return Running(base_url, moto_url, httpd, thread, cleanup, demo_key, tenant, endpoints)


def start_heavy_endpoints(cleanup: ExitStack) -> dict[str, str | None]:
    """Start an endpoint process per built heavy package; a missing package or failed start leaves its routes 503."""
    urls: dict[str, str | None] = {}
    for model in heavy_models()[:1]:
        endpoint = start_if_built(model)
        if endpoint is not None:
            cleanup.callback(endpoint.stop)
        urls[model] = endpoint.url if endpoint is not None else None
    return urls


def start_background(port: int = 0, model_dir: Path | None = None, **kwargs) -> tuple[str, Callable[[], None]]:
    """(base_url, stop) of a server running in a thread on 127.0.0.1; for tests and notebooks."""
    running = start(port=port, model_dir=model_dir, **kwargs)
    return running.base_url, running.stop


def served_beside(model: str) -> list[str]:
    """The catalog's other buildable models `maas serve` serves beside the embedding ``model``: its tiers (fast,
    static), the trained classifier, the heavy model (in its local endpoint process). The image model is apart:
    its folder follows ``model``'s."""
    from maas.inference.catalog import default_catalog

    catalog = default_catalog()
    own = catalog.resolve(model)
    if own is None or own.task != "embeddings":
        return []
    names = [e.name for e in catalog.entries if e.task != "image-classify"]
    return [n for n in dict.fromkeys(names) if n != own.name and n in BUILDS]


def ensure_model(model: str, build_missing: bool) -> Path | None:
    """The model package folder, built first when missing and allowed; None (reason printed) when unavailable."""
    folder = paths.model_dir(model)
    if (folder / "manifest.json").is_file():
        return folder
    if model not in BUILDS:
        print(
            f"error: model package {model!r} is missing at {folder}, and there is no builder for it "
            f"(buildable: {', '.join(BUILDS)})",
            file=sys.stderr,
        )
        return None
    if not build_missing:
        print(
            f"error: model package {model!r} is missing at {folder}; build it with "
            f"`maas models build {model}`, or run `maas serve` without --no-build",
            file=sys.stderr,
        )
        return None
    from maas.tools.build import build_package
    from maas.tools.build.minilm import BuildError

    print(f"model package {model!r} is missing: building it into {folder} (half a minute to a few)", file=sys.stderr)
    try:
        build_package(model, folder, compare=False)
    except BuildError as exc:
        print(f"error: building {model!r} failed: {exc}", file=sys.stderr)
        return None
    return folder


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def serve(
    host: str = "127.0.0.1", port: int = 8000, model: str = paths.DEFAULT_MODEL, build_missing: bool = True
) -> int:
    """Run the API locally until Ctrl-C. Returns the process exit status."""
    folder = ensure_model(model, build_missing)
    if folder is None:
        return 2
    image_model = folder.parent / c.DEFAULT_IMAGE_MODEL  # beside the embedding package (function_env)
    if not (image_model / "manifest.json").is_file():
        if build_missing and image_model == paths.model_dir(c.DEFAULT_IMAGE_MODEL):
            ensure_model(c.DEFAULT_IMAGE_MODEL, build_missing)  # on failure the route answers 503
        else:
            print(f"note: {image_model} is missing: /v1/images/classify answers 503 until it is built", file=sys.stderr)
    for other in served_beside(model):
        # Built like the model when missing; else a tier's id answers 404, the classifier's and the heavy model's 503.
        if ensure_model(other, build_missing) is None:
            print(f"note: {other} is not built: requests naming it are refused until it is", file=sys.stderr)
    try:
        running = start(host=host, port=port, model_dir=folder)
    except OSError as exc:
        print(f"error: cannot serve on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    url = running.base_url
    if not ipaddress.ip_address(running.httpd.server_name).is_loopback:
        print(
            f"warning: listening on {host}, not loopback: anyone who can reach this machine can call the API",
            file=sys.stderr,
        )
    print(f"AWS emulator (moto, DynamoDB tables created) on {running.moto_url}")
    if running.demo_key:
        print(f"demo tenant {running.demo_tenant!r} (plan {DEMO_PLAN}); its API key, shown once:")
        print(f"  export MAAS_API_KEY={running.demo_key}")
    print(f"maas is serving on {url}  (OpenAI base_url: {url}/v1)")
    print(f"Swagger UI: {url}/docs    OpenAPI: {url}/openapi.json")
    print("try:")
    print(
        f'  curl -s {url}/v1/embeddings -H "Authorization: Bearer $MAAS_API_KEY" '
        f"-H 'Content-Type: application/json' "
        f'-d \'{{"model": "{model}", "input": ["hello world"]}}\''
    )
    for name, endpoint_url in (running.endpoints or {}).items():
        where = f"a local endpoint process on {endpoint_url}" if endpoint_url else "no endpoint (not built): 503"
        print(f'heavy model {name} (SageMaker in production): {where}; use "model": "{name}"')
    print("Ctrl-C stops.", flush=True)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops as cleanly as Ctrl-C
    try:
        while running.thread.is_alive():
            running.thread.join(timeout=0.5)
    except KeyboardInterrupt:
        print("\nstopping", file=sys.stderr)
    finally:
        running.stop()
    return 0
