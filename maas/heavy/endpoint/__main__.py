"""`python -m maas.heavy.endpoint`: run the heavy-model endpoint's HTTP server (SageMaker's `serve` contract)."""

from __future__ import annotations

import argparse
import os
import sys

from maas.heavy.endpoint.server import serve
from maas.heavy.endpoint.service import EndpointSettings
from maas.settings import names as c
from maas.settings.base import SettingsError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m maas.heavy.endpoint",
        description="Serve a model package the way the heavy-model SageMaker endpoint does: GET /ping and "
        "POST /invocations (route, model and version in X-Amzn-SageMaker-Custom-Attributes). Settings come "
        f"from the environment ({c.ENV_MODEL_SOURCE}, {c.ENV_DEVICE}, {c.ENV_BATCH_SIZE}, {c.ENV_BATCH_TOKENS}, "
        f"{c.ENV_BATCH_WAIT_MS}, {c.ENV_MAX_INPUTS}); the options below override them.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve until interrupted (SageMaker runs the container with `serve`)")
    s.add_argument("--model", help=f"model package folder (default ${c.ENV_MODEL_SOURCE} or {c.SAGEMAKER_MODEL_DIR})")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (a container uses 0.0.0.0)")
    s.add_argument("--port", type=int, default=8080, help="port (SageMaker calls 8080)")
    s.add_argument("--device", choices=["auto", "cuda", "cpu"], help="execution provider (default auto)")
    s.add_argument(
        "--runtime-api",
        metavar="ENDPOINT_NAME",
        help="also answer the sagemaker-runtime InvokeEndpoint API for this endpoint name (local stand-in for AWS)",
    )
    args = parser.parse_args(argv)
    overrides = {c.ENV_MODEL_SOURCE: args.model, c.ENV_DEVICE: args.device}
    environ = {**os.environ, **{k: v for k, v in overrides.items() if v}}
    try:
        settings = EndpointSettings.from_env(environ)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return serve(
        settings, args.host, args.port, endpoint_name=args.runtime_api, runtime_api=args.runtime_api is not None
    )


if __name__ == "__main__":
    sys.exit(main())
