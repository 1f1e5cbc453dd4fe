"""`maas bench metering`: does `maas serve` hold load? Billed calls in a row against the local server.

Sends ``--requests`` billed single-sentence POST /v1/embeddings calls over one kept-alive connection (what every
SDK does) to a local server started in this process (the emulator included, so its memory is this process's
RSS), and reports, side by side in one run:
- the RSS and the p50 latency of the first and the last 1,000 billed calls (flat is the goal: growth at most
  200 MB, last/first p50 at most 1.5);
- kept-alive calls against a new connection per call, interleaved in blocks (kept-alive must not be slower);
- that the bill is exact: after the aggregator has drained the stream, the tenant's billed requests equal the
  calls answered 200.
With ``--trace-memory``, also the Python heap's growth per call (tracemalloc, from after the warm-up), split into
what the AWS emulator (moto) keeps and everything else.
Bounded: at most 100,000 requests and ``--max-seconds``; only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import http.client
import json
import resource
import sys
import time
from pathlib import Path

from maas.tools.bench.common import markdown_table, median, write_results

MAX_REQUESTS = 100_000
WINDOW = 1000  # calls in the first and last windows compared
BLOCK = 50  # calls per block when kept-alive and new connections alternate
BODY = json.dumps({"model": "all-minilm-l6-v2", "input": "The quick brown fox jumps over the lazy dog."}).encode()


def rss_mb() -> float:
    """This process's resident set size now (Linux /proc; the peak from getrusage elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Client:
    """POST /v1/embeddings to the local server, kept alive or on a new connection per call."""

    def __init__(self, host: str, port: int, key: str):
        self.host, self.port = host, port
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.conn = http.client.HTTPConnection(host, port, timeout=30)

    def call(self, keep_alive: bool = True) -> tuple[int, float]:
        conn = self.conn if keep_alive else http.client.HTTPConnection(self.host, self.port, timeout=30)
        started = time.perf_counter()
        conn.request("POST", "/v1/embeddings", body=BODY, headers=self.headers)
        response = conn.getresponse()
        response.read()
        elapsed = time.perf_counter() - started
        if not keep_alive:
            conn.close()
        return response.status, elapsed

    def close(self) -> None:
        self.conn.close()


def bench_tenant(moto_url: str) -> tuple[str, str]:
    """A fresh tenant on the enterprise plan (its 500 requests/s leave a single client unthrottled): (id, key)."""
    from maas.tools.local.server import new_tenant

    return new_tenant(moto_url, "Metering bench", "enterprise")


def billed_requests(moto_url: str, tenant_id: str) -> int:
    """The tenant's billed requests this month, from the aggregates."""
    from maas.metering.store import Meter, month_of
    from maas.tables import USAGE
    from maas.tools.local.emulator import AwsEmulator

    emulator = AwsEmulator()
    emulator.url = moto_url
    rows = Meter(emulator.client("dynamodb"), USAGE.local_name).monthly(tenant_id, month_of(time.time()))
    return sum(r["requests"] for r in rows)


EMULATOR = "emulator (moto)"


def heap_growth(before, after, calls: int) -> dict[str, float]:
    """KB per call the Python heap grew between two tracemalloc snapshots, by owner: allocations made under the
    AWS emulator (any frame in moto: the items, stream records and parsed requests it keeps) and everything else
    (maas, the libraries, the bench)."""
    grown = {EMULATOR: 0, "everything else": 0}
    for stat in after.compare_to(before, "traceback"):
        owner = EMULATOR if any("/moto/" in frame.filename for frame in stat.traceback) else "everything else"
        grown[owner] += stat.size_diff
    return {owner: round(size / calls / 1024, 2) for owner, size in grown.items()}


def run(args) -> int:
    from maas.tools.local.server import start

    trace = getattr(args, "trace_memory", False)
    if trace:
        import tracemalloc

    requests = int(args.requests)
    if not WINDOW * 2 <= requests <= MAX_REQUESTS:
        print(f"error: --requests must be between {2 * WINDOW} and {MAX_REQUESTS}", file=sys.stderr)
        return 2
    running = start(heavy=False)
    try:
        host, port = running.httpd.server_name, running.httpd.server_port
        tenant_id, key = bench_tenant(running.moto_url)
        client = Client(host, port, key)
        for _ in range(50):  # warm: model, tokenizer, first lease, connection
            client.call()
        rss_start = rss_mb()
        if trace:  # from here on: loading the models under the tracer took minutes and timed the client out
            tracemalloc.start(8)  # deep enough to reach moto's frames below the server's
        heap_start = tracemalloc.take_snapshot() if trace else None
        latencies, statuses, deadline = [], {}, time.monotonic() + args.max_seconds
        rss_first = rss_start
        for i in range(requests):
            status, elapsed = client.call()
            statuses[status] = statuses.get(status, 0) + 1
            latencies.append(elapsed)
            if i + 1 == WINDOW:
                rss_first = rss_mb()
            if (i + 1) % 1000 == 0:
                print(f"  {i + 1}/{requests} calls, RSS {rss_mb():.0f} MB", file=sys.stderr, flush=True)
            if time.monotonic() > deadline:
                print(f"  stopped at --max-seconds after {i + 1} calls", file=sys.stderr)
                break
        rss_end = rss_mb()
        heap = heap_growth(heap_start, tracemalloc.take_snapshot(), len(latencies)) if trace else None
        kept, fresh = [], []
        for block in range(10):  # alternate, so that both see the same machine load
            for _ in range(BLOCK):
                (kept if block % 2 == 0 else fresh).append(client.call(keep_alive=block % 2 == 0)[1])
        client.close()
        time.sleep(2.5)  # the local stream driver delivers every second
        billed = billed_requests(running.moto_url, tenant_id)
        answered = 50 + statuses.get(200, 0) + len(kept) + len(fresh)
    finally:
        running.stop()
    first, last = median(latencies[:WINDOW]) * 1000, median(latencies[-WINDOW:]) * 1000
    results = {
        "requests": len(latencies),
        "statuses": statuses,
        "billed_requests": billed,
        "answered_200_total": answered,
        "rss_mb": {"start": round(rss_start, 1), "after_first_1000": round(rss_first, 1), "end": round(rss_end, 1)},
        "rss_growth_mb": round(rss_end - rss_start, 1),
        "p50_ms": {"first_1000": round(first, 3), "last_1000": round(last, 3)},
        "last_over_first_p50": round(last / first, 3),
        "keep_alive_p50_ms": round(median(kept) * 1000, 3),
        "new_connection_p50_ms": round(median(fresh) * 1000, 3),
        "date": time.strftime("%Y-%m-%d"),
    }
    if heap is not None:
        results["heap_growth_kb_per_call"] = heap
    write_results(results, args.json)
    rows = [
        ["calls answered", str(len(latencies)), ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items()))],
        ["billed requests (aggregates)", str(billed), f"answered 200 in all: {answered} (warm-up included)"],
        ["RSS start -> end (MB)", f"{rss_start:.0f} -> {rss_end:.0f}", f"growth {rss_end - rss_start:.0f} MB"],
        ["p50 first / last 1,000 (ms)", f"{first:.2f} / {last:.2f}", f"last/first {last / first:.2f}"],
        [
            "p50 kept-alive / new connection (ms)",
            f"{results['keep_alive_p50_ms']:.2f} / {results['new_connection_p50_ms']:.2f}",
            "interleaved blocks of 50",
        ],
    ]
    if heap is not None:
        rows.append(
            [
                "Python heap growth (KB per call)",
                " / ".join(f"{kb:.2f}" for kb in heap.values()),
                " / ".join(heap),
            ]
        )
    print(markdown_table(["maas bench metering", "value", "note"], rows))
    print(f"results: {args.json}")
    return 0
