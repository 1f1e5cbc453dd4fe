"""`maas invoke FUNCTION --event FILE`: run one handler on one event in-process, like `sam local invoke`."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from maas.api.routes import HEAVY_FUNCTION, RouteMatcher, api_routes
from maas.settings import names as c
from maas.tables import USAGE
from maas.tools.local.batch import batch_variables, create_batch_resources
from maas.tools.local.emulator import AwsEmulator, aws_env, table_env
from maas.tools.local.endpoint import heavy_models, proxy_env, start_if_built
from maas.tools.local.functions import (
    FunctionNotFound,
    LambdaContext,
    default_env,
    load_handler,
    model_missing_hint,
    patched_environ,
)


def invoke(function: str, event_path: Path, env: dict[str, str] | None = None) -> int:
    """Print the handler's result as JSON on stdout; timings and logs go to stderr. Exit 0 on a 2xx/3xx."""
    try:
        event = json.loads(Path(event_path).read_text())
    except FileNotFoundError:
        print(f"error: event file {event_path} not found", file=sys.stderr)
        return 2
    except json.JSONDecodeError as exc:
        print(f"error: {event_path} is not valid JSON: {exc}", file=sys.stderr)
        return 2
    routed = routed_function(event)
    if routed is not None and routed != function:
        print(
            f"note: API Gateway sends {event['httpMethod']} {event.get('path')} to '{routed}', not '{function}'",
            file=sys.stderr,
        )
    merged = {**default_env(function), **(env or {})}
    hint = model_missing_hint(merged) if function in ("embeddings", "image_classify") else None
    if hint:
        print(f"error: {hint}", file=sys.stderr)
        return 2
    endpoint = None
    if function == HEAVY_FUNCTION and c.ENV_SAGEMAKER_ENDPOINT not in merged:
        # Like the deployed proxy: its endpoint is the heavy package's inference server, here a local process.
        endpoint, endpoint_env = _local_endpoint()
        merged = {**endpoint_env, **merged}
    emulator = None
    if not any(k in merged or k in os.environ for k in ("AWS_ENDPOINT_URL", USAGE.env_var)):
        # Like `sam local invoke` without Docker: AWS calls go to an in-process emulator with the tables.
        emulator = AwsEmulator()
        emulator.start()
        emulator.create_tables()
        # The job bucket and the batch queues too: the jobs API presigns into the bucket, the batch functions
        # continue and dead-letter through the queues.
        queues = create_batch_resources(emulator)
        merged = {**aws_env(emulator.url), **table_env(), **batch_variables(queues), **merged}
    try:
        t0 = time.perf_counter()
        try:
            handler = load_handler(function, merged)
        except FunctionNotFound as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        t1 = time.perf_counter()
        with patched_environ(merged):
            try:
                result = handler(event, LambdaContext(function_name=f"maas-{function}"))
            except Exception as exc:  # reported the way Lambda reports a function error
                result = {"errorMessage": str(exc), "errorType": type(exc).__name__}
        t2 = time.perf_counter()
    finally:
        if emulator is not None:
            emulator.stop()
        if endpoint is not None:
            endpoint.stop()
    print(json.dumps(result, indent=2))
    print(f"init {1000 * (t1 - t0):.1f} ms, invoke {1000 * (t2 - t1):.1f} ms", file=sys.stderr)
    if isinstance(result, dict) and "errorMessage" in result:
        return 1
    status = result.get("statusCode", 200) if isinstance(result, dict) else 200
    return 0 if status < 400 else 1


def routed_function(event: dict) -> str | None:
    """The function the route table (maas.api.routes) sends an API Gateway event to; None for other events
    (the authorizer's, S3, SQS) and paths no route has."""
    if not isinstance(event, dict) or "httpMethod" not in event or "methodArn" in event:
        return None
    found = RouteMatcher(api_routes(heavy_models())).match(event["httpMethod"], event.get("path") or "")
    return found[0].function if found is not None else None


def _local_endpoint():
    """(the running local endpoint or None, the proxy's variables) for the catalog's first heavy model."""
    model = heavy_models()[0]
    endpoint = start_if_built(model)
    return endpoint, proxy_env(model, endpoint.url if endpoint is not None else None)
