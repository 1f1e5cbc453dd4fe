"""`maas bench budget`: the largest request each text route allows, timed at the deployed memory's CPU share.

Each route's function is loaded in this process with one onnxruntime thread (MAAS_THREADS=1), metering off and
AWS_LAMBDA_FUNCTION_MEMORY_SIZE set to the deployed memory (so its token budget is the deployed one). For each
route the largest allowed request is built from inputs of the model's full 256 tokens (the slowest per token)
and answered ``--rounds`` times; the process CPU time of one answer, divided by the CPU share Lambda gives that
memory (memory / 1,769 MB of a vCPU), is the predicted time on Lambda. CPU time, not wall time, so that other load
on the machine does not inflate it. Done when every prediction is within half of API Gateway's 29 s; one input
more is checked to be refused before the model runs (413 over the budget, 400 over the inputs limit). Writes
bench-results/budget.json.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from maas.settings import names as c
from maas.settings.mixins import token_budget
from maas.tools import paths
from maas.tools.bench.common import InProcessHandler, Progress, json_event, machine, markdown_table, write_results

DEFAULT_JSON = "bench-results/budget.json"
LONG = "refund " * 300  # truncated to the model's 256 tokens: the slowest tokens per second
LABELS = ["billing", "shipping", "account access", "refund", "technical issue"]


@dataclass(frozen=True)
class BudgetRoute:
    """A route, its function and its largest allowed request: ``build(budget, count) -> (body, description,
    tokens)``, where ``count(texts)`` is the model's token count."""

    name: str
    function: str
    path: str
    build: Callable[[int, Callable[[list[str]], int]], tuple[dict, str, int]]
    classifier: bool = False


def _embeddings(budget: int, count) -> tuple[dict, str]:
    n = budget // count([LONG])
    return {"input": [LONG] * n, "encoding_format": "base64"}, f"{n} x 256 tokens", n * count([LONG])


def _embeddings_short(budget: int, count) -> tuple[dict, str]:
    # as many inputs as allowed, each as long as the budget leaves: the per-input overhead at its largest
    per = budget // c.DEFAULT_MAX_INPUTS
    words = max(1, per - 2)
    while words > 1 and count(["refund " * words]) > per:
        words -= 1
    text, n = "refund " * words, c.DEFAULT_MAX_INPUTS
    return {"input": [text] * n, "encoding_format": "base64"}, f"{n} x {count([text])} tokens", n * count([text])


def _rerank(budget: int, count) -> tuple[dict, str]:
    query = "how do I get a refund"
    n = (budget - count([query])) // count([LONG])
    return {"query": query, "documents": [LONG] * n}, f"query + {n} x 256 tokens", count([query, *[LONG] * n])


def _classify(budget: int, count) -> tuple[dict, str]:
    n = budget // count([LONG])
    return {"inputs": [LONG] * n}, f"{n} x 256 tokens (trained head)", n * count([LONG])


def _zero_shot(budget: int, count) -> tuple[dict, str]:
    hypotheses = count([f"This example is {label}." for label in LABELS])
    n = (budget - hypotheses) // count([LONG])
    body = {"inputs": [LONG] * n, "parameters": {"candidate_labels": LABELS}}
    return body, f"{n} x 256 tokens, {len(LABELS)} labels", n * count([LONG]) + hypotheses


def _v2(budget: int, count) -> tuple[dict, str]:
    rows, width = budget // 256, 256
    ids = [101] + [2000] * (width - 2) + [102]

    def tensor(name, row):
        return {"name": name, "datatype": "INT64", "shape": [rows, width], "data": row * rows}

    body = {"inputs": [tensor("input_ids", ids), tensor("attention_mask", [1] * width)]}
    return body, f"{rows} rows x {width} positions", rows * width


ROUTES = (
    BudgetRoute("embeddings", "embeddings", "/v1/embeddings", _embeddings),
    BudgetRoute("embeddings (short)", "embeddings", "/v1/embeddings", _embeddings_short),
    BudgetRoute("rerank", "rerank", "/v1/rerank", _rerank),
    BudgetRoute("classify", "classify", "/v1/classify", _classify, classifier=True),
    BudgetRoute("classify zero-shot", "classify", "/v1/classify", _zero_shot, classifier=True),
    BudgetRoute("v2 infer", "v2", f"/v2/models/{paths.DEFAULT_MODEL}/infer", _v2),
)


def _one_more(body: dict) -> dict:
    """The same request with one input more: over the budget."""
    for key in ("input", "documents", "inputs"):
        if isinstance(body.get(key), list) and body[key] and isinstance(body[key][0], str):
            return {**body, key: [*body[key], LONG]}
    rows, width = body["inputs"][0]["shape"]
    return {
        "inputs": [{**t, "shape": [rows + 1, width], "data": t["data"] + t["data"][:width]} for t in body["inputs"]]
    }


def measure(route: BudgetRoute, handler: InProcessHandler, budget: int, count, rounds: int) -> dict:
    """CPU and wall seconds of the route's largest allowed request (the best of ``rounds``), and whether one input
    more is refused."""
    body, shape, tokens = route.build(budget, count)
    handler.call(json_event("POST", route.path, _small(route)))  # warm: sessions, caches
    event = json_event("POST", route.path, body)
    cpu, wall = [], []
    for _ in range(rounds):
        c0, w0 = time.process_time(), time.perf_counter()
        handler.call(event)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    over = handler.call_any(json_event("POST", route.path, _one_more(body)))
    # 413 over the token budget; 400 where the request is at the route's input limit first (2,048 short inputs)
    status = over["statusCode"]
    return {"shape": shape, "tokens": tokens, "cpu_s": min(cpu), "wall_s": min(wall), "next_status": status}


def _small(route: BudgetRoute) -> dict:
    return route.build(4096, lambda texts: 256 * len(texts))[0]


def run(args) -> int:
    from tokenizers import Tokenizer

    models = paths.MODELS_DIR
    memory = args.memory_mb
    share = memory / c.LAMBDA_MB_PER_VCPU
    limit_s = c.GATEWAY_TIMEOUT_S / c.BUDGET_MARGIN
    budget = args.max_request_tokens or token_budget(memory)
    tokenizer = Tokenizer.from_file(str(models / paths.DEFAULT_MODEL / "tokenizer.json"))

    def count(texts: list[str]) -> int:
        return sum(len(e.ids) for e in tokenizer.encode_batch(texts))

    progress = Progress()
    loadavg = os.getloadavg()
    env = {
        c.ENV_MODEL_SOURCE: str(models / paths.DEFAULT_MODEL),
        c.ENV_THREADS: "1",
        c.ENV_METERING: "off",
        c.ENV_LAMBDA_MEMORY_MB: str(memory),
    }
    if args.max_request_tokens:
        env[c.ENV_MAX_REQUEST_TOKENS] = str(args.max_request_tokens)
    handlers: dict[str, InProcessHandler] = {}
    results = {}
    for route in ROUTES:
        if args.route and route.name not in args.route:
            continue
        if route.function not in handlers:
            extra = {c.ENV_CLASSIFIER_SOURCES: str(models / c.DEFAULT_CLASSIFIER)} if route.classifier else {}
            handlers[route.function] = InProcessHandler(route.function, {**env, **extra})
        progress(f"{route.name}: the largest request of a {budget:,}-token budget")
        r = measure(route, handlers[route.function], budget, count, args.rounds)
        r["predicted_lambda_s"] = r["cpu_s"] / share
        r["tokens_per_cpu_s"] = r["tokens"] / r["cpu_s"]
        r["within"] = r["predicted_lambda_s"] <= limit_s
        results[route.name] = r
        progress(f"{route.name}: {r['tokens']:,} tokens, {r['cpu_s']:.2f} CPU s -> {r['predicted_lambda_s']:.2f} s")
    rows = [
        [
            name,
            r["shape"],
            f"{r['tokens']:,}",
            f"{r['cpu_s']:.2f}",
            f"{r['wall_s']:.2f}",
            f"{r['predicted_lambda_s']:.2f}",
            f"{r['tokens_per_cpu_s']:,.0f}",
            "yes" if r["within"] else "NO",
            str(r["next_status"]),
        ]
        for name, r in results.items()
    ]
    header = [
        "route",
        "largest request",
        "tokens",
        "CPU s",
        "wall s here",
        "Lambda s",
        "tokens/CPU-s",
        "<= 14.5 s",
        "+1: 413",
    ]
    host = machine(loadavg, ("onnxruntime",))
    print(
        f"budget {budget:,} tokens per request at {memory} MB ({share:.2f} vCPU), 1 thread; Lambda s = CPU s / "
        f"{share:.2f}; limit {limit_s} s (API Gateway's {c.GATEWAY_TIMEOUT_S} s / {c.BUDGET_MARGIN})"
    )
    print(markdown_table(header, rows))
    print(f"CPU {host['cpu_model']} | load avg {host['loadavg_start']} -> {host['loadavg_end']}")
    out = write_results(
        {
            "budget_tokens": budget,
            "memory_mb": memory,
            "vcpu_share": share,
            "limit_s": limit_s,
            "routes": results,
            "machine": host,
        },
        args.json,
    )
    print(f"wrote {out}")
    return 0 if all(r["within"] and r["next_status"] in (400, 413) for r in results.values()) else 1


def add_arguments(parser) -> None:
    """`maas bench budget`'s options."""
    parser.add_argument(
        "--memory-mb", type=int, default=c.DEFAULT_FUNCTION_MEMORY_MB, help="the functions' deployed memory"
    )
    parser.add_argument("--max-request-tokens", type=int, default=None, help="a budget other than the derived one")
    parser.add_argument("--route", action="append", choices=[r.name for r in ROUTES], help="one route (repeatable)")
    parser.add_argument("--rounds", type=int, default=2, help="answers of the largest request per route (best)")
    parser.add_argument("--json", default=DEFAULT_JSON, help=f"where to write the results (default {DEFAULT_JSON})")
