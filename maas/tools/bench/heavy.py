"""`maas bench heavy`: the heavy-model route through the proxy and the endpoint process vs the inference package
called directly, in one run; and the endpoint's dynamic batching under concurrent load, on or off.

Contenders, same request bodies, interleaved rounds (the machines are shared and noisy):

- direct: ``EndpointService.invoke`` in this process (the inference package with no transport at all);
- http: ``POST /invocations`` to the endpoint process (`python -m maas.heavy.endpoint serve`, what `maas serve` runs
  in place of SageMaker), over one keep-alive connection;
- proxy: functions/heavy_proxy's handler invoked in-process with API Gateway events (as Lambda does warm), its
  botocore client calling the endpoint process's InvokeEndpoint stand-in; metering off, so the number is the
  proxy and transport, not the emulated DynamoDB. Skipped where boto3 or Powertools are not installed.

Shapes are `BATCHxTOKENS` (texts per request x tokens per text, [CLS] and [SEP] included). Concurrency: C client
threads send single short texts; with batching on the endpoint merges whatever is queued into one session.run.
Nothing here asserts a performance number: it measures and reports.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from maas.settings import names as c
from maas.tools import paths
from maas.tools.bench.embeddings import latency_summary, rotated

MODEL = "all-minilm-l6-v2-fp32"
DEFAULT_SHAPES = "1x16,1x512,32x128,32x512"
WORDS = "the quick brown fox jumps over a lazy dog while seven small birds sing near old river banks".split()


def parse_shapes(text: str) -> list[tuple[int, int]]:
    shapes = []
    for part in text.split(","):
        batch, _, tokens = part.strip().partition("x")
        if not (batch.isdigit() and tokens.isdigit()) or int(batch) < 1 or int(tokens) < 3:
            raise ValueError(f"shape {part!r}: expected BATCHxTOKENS, e.g. 32x512 (tokens >= 3)")
        shapes.append((int(batch), int(tokens)))
    return shapes


def text_of(tokens: int, tokenizer, offset: int = 0) -> str:
    """A text the tokenizer turns into exactly ``tokens`` tokens ([CLS] and [SEP] included)."""
    words = [WORDS[(offset + i) % len(WORDS)] for i in range(tokens - 2)]
    text = " ".join(words)
    got = len(tokenizer.encode(text).ids)
    if got != tokens:
        raise ValueError(f"built a {got}-token text for {tokens}")
    return text


class _Http:
    """One keep-alive connection to the endpoint process's /invocations."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)

    def __call__(self, body: bytes) -> bytes:
        self.conn.request("POST", "/invocations", body, {"Content-Type": "application/json"})
        response = self.conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"/invocations answered {response.status}: {data[:200]!r}")
        return data


def _proxy(url: str, endpoint_name: str):
    """The heavy_proxy handler against the endpoint process, or None (with the reason) if it cannot load here."""
    try:
        import boto3  # noqa: F401
        from aws_lambda_powertools import Logger  # noqa: F401
    except ImportError as exc:
        return None, f"proxy skipped: {exc.name} is not installed here"
    from maas.tools.local.apigw import make_event
    from maas.tools.local.emulator import aws_env
    from maas.tools.local.functions import LambdaContext, load_handler

    env = {
        **aws_env("http://127.0.0.1:9"),  # no AWS; the proxy's client has its own endpoint URL
        c.ENV_SAGEMAKER_ENDPOINT: endpoint_name,
        c.ENV_MODEL_NAME: MODEL,
        c.ENV_SAGEMAKER_RUNTIME_URL: url,
        c.ENV_METERING: "off",
        c.ENV_ENDPOINT_TIMEOUT_S: "60",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    handler = load_handler("heavy_proxy", env)
    context = LambdaContext(function_name="maas-heavy-proxy-bench")

    def call(body: bytes) -> bytes:
        event = make_event("POST", "/v1/embeddings", headers={"Content-Type": "application/json"}, body=body)
        result = handler(event, context)
        if result["statusCode"] != 200:
            raise RuntimeError(f"proxy answered {result['statusCode']}: {result['body'][:200]}")
        return result["body"].encode()

    return call, None


def latency(contenders: dict, bodies: dict, rounds: int, warmup: int = 3) -> dict:
    results = {}
    for shape, body in bodies.items():
        for call in contenders.values():
            for _ in range(warmup):
                call(body)
        times = {name: [] for name in contenders}
        for r in range(rounds):
            for name in rotated(list(contenders), r):
                t0 = time.perf_counter()
                contenders[name](body)
                times[name].append(time.perf_counter() - t0)
        results[shape] = {name: latency_summary(t) for name, t in times.items()}
    return results


def throughput(service, text: str, concurrency: int, requests: int) -> dict:
    """Requests/s of ``concurrency`` threads sending ``requests`` single-text embeddings requests in all."""
    body = json.dumps({"input": [text]}).encode()
    counts = [requests // concurrency + (1 if i < requests % concurrency else 0) for i in range(concurrency)]
    errors: list[str] = []
    barrier = threading.Barrier(concurrency + 1)

    def worker(n: int) -> None:
        barrier.wait()
        for _ in range(n):
            answer = service.invoke(body, {"route": "embeddings"})
            if answer.status != 200:
                errors.append(answer.body.decode()[:200])

    embedder = service.embeddings.embedder
    batcher = getattr(embedder, "batcher", None)
    before = batcher.stats.as_dict() if batcher is not None else None
    threads = [threading.Thread(target=worker, args=(n,)) for n in counts]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    stats = None
    if batcher is not None:  # this test's batches only (the latency rounds went through the same batcher)
        after = batcher.stats.as_dict()
        stats = {k: after[k] - before[k] for k in ("batches", "requests", "texts")}
        stats["mean_requests_per_batch"] = round(stats["requests"] / max(stats["batches"], 1), 3)
    return {
        "requests": requests,
        "concurrency": concurrency,
        "wall_s": wall,
        "requests_per_s": requests / wall,
        "errors": len(errors),
        "batcher": stats,
    }


def run(
    *,
    device: str = "cpu",
    shapes: str = DEFAULT_SHAPES,
    rounds: int = 20,
    concurrency: int = 16,
    requests: int = 400,
    model_dir: Path | None = None,
    out_dir: Path = paths.REPO_ROOT / "bench-results",
    quiet: bool = False,
) -> dict:
    from maas.heavy.endpoint.service import EndpointService, EndpointSettings
    from maas.tools.local.endpoint import start_local_endpoint

    say = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))
    folder = Path(model_dir or paths.model_dir(MODEL))
    settings = EndpointSettings(model_source=str(folder), device=device)
    say(f"loading {folder.name} in this process ({device}) and starting the endpoint process ...")
    service = EndpointService(settings)
    if service.embeddings.load_error:
        raise RuntimeError(service.embeddings.load_error)
    endpoint = start_local_endpoint(folder, MODEL, device=device)
    try:
        tokenizer = service.embeddings.embedder.tokenizer
        bodies = {
            f"{b}x{t}": json.dumps({"input": [text_of(t, tokenizer, i) for i in range(b)]}).encode()
            for b, t in parse_shapes(shapes)
        }
        contenders = {"direct": lambda body: service.invoke(body, {"route": "embeddings"}).body}
        contenders["http"] = _Http(endpoint.url)
        proxy, skipped = _proxy(endpoint.url, endpoint.name)
        if proxy is not None:
            contenders["proxy"] = proxy
        say(f"latency: {', '.join(bodies)} x {rounds} rounds, contenders {', '.join(contenders)}")
        lat = latency(contenders, bodies, rounds)
        say(f"throughput: {requests} single-text requests from {concurrency} threads, batching on and off")
        text = text_of(16, tokenizer)
        batched = throughput(service, text, concurrency, requests)
        unbatched_service = EndpointService(settings.model_copy(update={"batching": False}))
        unbatched = throughput(unbatched_service, text, concurrency, requests)
    finally:
        endpoint.stop()
    results = {
        "suite": "heavy",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "model": MODEL,
        "device": service.device,
        "rounds": rounds,
        "latency": lat,
        "proxy_skipped": skipped,
        "throughput": {"batching": batched, "no_batching": unbatched},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"heavy-{device}.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def table(results: dict) -> str:
    lat = results["latency"]
    names = list(next(iter(lat.values())))
    lines = [
        f"heavy model {results['model']} on {results['device']} ({results['machine']['cpus']} CPUs), "
        f"p50 ms over {results['rounds']} rounds"
    ]
    header = "| shape (texts x tokens) | " + " | ".join(f"{n} p50" for n in names)
    header += " | http / direct" + (" | proxy / direct |" if "proxy" in names else " |")
    lines += [header, "|" + "---|" * (header.count("|") - 1)]
    for shape, by in lat.items():
        row = f"| {shape} | " + " | ".join(f"{by[n]['p50_ms']:.2f}" for n in names)
        row += f" | {by['http']['p50_ms'] / by['direct']['p50_ms']:.2f}x"
        if "proxy" in by:
            row += f" | {by['proxy']['p50_ms'] / by['direct']['p50_ms']:.2f}x"
        lines.append(row + " |")
    if results.get("proxy_skipped"):
        lines.append(results["proxy_skipped"])
    on, off = results["throughput"]["batching"], results["throughput"]["no_batching"]
    mean = on["batcher"]["mean_requests_per_batch"] if on["batcher"] else 0
    lines.append(
        f"concurrency {on['concurrency']}, {on['requests']} single-text requests: batching "
        f"{on['requests_per_s']:.0f} req/s ({mean:.1f} requests per session.run) vs no batching "
        f"{off['requests_per_s']:.0f} req/s = {on['requests_per_s'] / off['requests_per_s']:.2f}x"
    )
    return "\n".join(lines)


def main(args) -> int:
    results = run(
        device=args.device,
        shapes=args.shapes,
        rounds=args.rounds,
        concurrency=args.concurrency,
        requests=args.requests,
        model_dir=args.model_dir,
    )
    print(table(results))
    return 0
