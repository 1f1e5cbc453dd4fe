"""`python -m maas.tools.bench.openai_batch`: the Batch API's throughput against the synchronous route's, both through
`maas serve` with the stock openai SDK, on the same lines.

- batch: files.create, batches.create, then batches.retrieve every 0.2 s until completed; timed from create to the
  batch's completed_at-equivalent (the poll that sees it), the upload not counted; then files.content.
- sync: the same lines, one POST /v1/embeddings per line (as each batch line is one request), sequentially from one
  client, and with ``--concurrency`` clients at once.

Rounds are interleaved (the machines are shared and noisy); the best of each is reported, with lines per second and
the ratio. Nothing here asserts a number.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from maas.tools import paths
from maas.tools.bench.batch import bench_lines

MODEL = "all-minilm-l6-v2"
# One line's body per endpoint (--endpoint): an embeddings input, a text for the default classifier, a query and
# three documents to rerank.
BODIES = {
    "/v1/embeddings": lambda t: {"model": MODEL, "input": t},
    "/v1/classify": lambda t: {"inputs": t},
    "/v1/rerank": lambda t: {"query": t, "documents": [f"{t} again", "the weather is fine today", t.upper()]},
}


def batch_file(texts: list[str], tag: str, endpoint: str = "/v1/embeddings") -> bytes:
    lines = (
        {"custom_id": f"{tag}-{i}", "method": "POST", "url": endpoint, "body": BODIES[endpoint](t)}
        for i, t in enumerate(texts)
    )
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def run_batch(client, texts: list[str], tag: str, endpoint: str = "/v1/embeddings") -> float:
    data = batch_file(texts, tag, endpoint)
    uploaded = client.files.create(file=(f"{tag}.jsonl", io.BytesIO(data)), purpose="batch")
    started = time.perf_counter()
    batch = client.batches.create(input_file_id=uploaded.id, endpoint=endpoint, completion_window="24h")
    while batch.status not in ("completed", "failed", "cancelled", "expired"):
        time.sleep(0.2)
        batch = client.batches.retrieve(batch.id)
    elapsed = time.perf_counter() - started
    if batch.status != "completed" or batch.request_counts.completed != len(texts):
        raise RuntimeError(f"batch {batch.id} ended {batch.status}: {batch.request_counts} {batch.errors}")
    return elapsed


def run_sync(client, texts: list[str], concurrency: int, endpoint: str = "/v1/embeddings") -> float:
    """One call per line: embeddings through the SDK, classify and rerank as plain POSTs with the same client."""

    def call(t: str) -> None:
        if endpoint == "/v1/embeddings":
            client.embeddings.create(model=MODEL, input=t, encoding_format="float")
        else:
            client.post(endpoint.removeprefix("/v1"), body=BODIES[endpoint](t), cast_to=object)

    started = time.perf_counter()
    if concurrency == 1:
        for t in texts:
            call(t)
    else:
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(call, texts))
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4, help="clients at once for the concurrent sync run")
    parser.add_argument("--endpoint", choices=sorted(BODIES), default="/v1/embeddings", help="the batch's endpoint")
    args = parser.parse_args(argv)

    import openai

    from maas.tools.local.server import new_tenant, start

    running = start(host="127.0.0.1", port=0, model_dir=paths.model_dir(MODEL))
    try:
        key = new_tenant(running.moto_url, "Batch bench", "enterprise")[1]
        client = openai.OpenAI(base_url=f"{running.base_url}/v1", api_key=key, max_retries=0)
        texts = bench_lines(args.lines)
        client.embeddings.create(model=MODEL, input=texts[:8])  # warm the function
        times: dict[str, list[float]] = {"batch": [], "sync x1": [], f"sync x{args.concurrency}": []}
        for r in range(args.rounds):
            times["batch"].append(run_batch(client, texts, f"r{r}", args.endpoint))
            times["sync x1"].append(run_sync(client, texts, 1, args.endpoint))
            times[f"sync x{args.concurrency}"].append(run_sync(client, texts, args.concurrency, args.endpoint))
        best = {name: min(values) for name, values in times.items()}
        print(f"{args.lines} {args.endpoint} lines (eval_sentences.txt, cycled), {args.rounds} rounds: best / median")
        for name, values in times.items():
            print(
                f"  {name:10s} {best[name]:7.2f} s / {statistics.median(values):7.2f} s   "
                f"{args.lines / best[name]:7.1f} lines/s   batch is {best[name] / best['batch']:.2f}x faster"
            )
    finally:
        running.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
