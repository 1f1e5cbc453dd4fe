"""The heavy-model endpoint as a local process: `maas serve` runs the inference package in place of SageMaker.

The process is `python -m maas.heavy.endpoint serve --runtime-api NAME` on 127.0.0.1 (a free port): the container's
/ping and /invocations, plus a stand-in for the sagemaker-runtime InvokeEndpoint API, so the proxy function
calls it with its real botocore client (MAAS_SAGEMAKER_RUNTIME_URL) exactly as it calls AWS.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from maas.settings import names as c
from maas.tools import paths

READY = re.compile(r"^endpoint (?P<state>ready|failed.*) on (?P<url>http://\S+)")
START_TIMEOUT_S = 120.0


class EndpointStartError(Exception):
    pass


def heavy_models() -> list[str]:
    """Catalog models served by a SageMaker endpoint (each gets a proxy and, locally, an endpoint process)."""
    from maas.inference.catalog import default_catalog

    return sorted({e.name for e in default_catalog().entries if e.runtime == "sagemaker" and not e.placeholder})


def local_endpoint_name(model: str) -> str:
    return f"local-{model}"


@dataclass
class LocalEndpoint:
    url: str
    name: str
    process: subprocess.Popen

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_local_endpoint(
    model_dir: Path, model: str, *, device: str = "cpu", env: dict[str, str] | None = None
) -> LocalEndpoint:
    """Start the endpoint process for the package at ``model_dir`` and wait until its model is loaded."""
    name = local_endpoint_name(model)
    # Through maas.tools.local.child: the endpoint exits when this process does (its stdin is our pipe).
    cmd = [sys.executable, "-m", "maas.tools.local.child", "maas.heavy.endpoint", "serve", "--model", str(model_dir)]
    cmd += ["--port", "0"]
    cmd += ["--device", device, "--runtime-api", name]
    process = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
    )
    found: dict[str, str] = {}
    reader = threading.Thread(target=_read_ready, args=(process, found), daemon=True)
    reader.start()
    reader.join(START_TIMEOUT_S)
    if "url" not in found or not found["state"].startswith("ready"):
        process.kill()
        process.wait()
        reason = found.get("state") or f"no ready line within {START_TIMEOUT_S:g} s (exit {process.returncode})"
        raise EndpointStartError(f"the local endpoint for {model} did not start: {reason}")
    return LocalEndpoint(found["url"], name, process)


def start_if_built(model: str) -> LocalEndpoint | None:
    """The heavy model's endpoint process if its package is built and it starts; else None, the reason printed
    (its routes then answer 503, as a missing endpoint does)."""
    folder = paths.model_dir(model)
    if not (folder / "manifest.json").is_file():
        print(f"heavy model {model!r} is not built: its routes answer 503 (maas models build {model})", file=sys.stderr)
        return None
    try:
        return start_local_endpoint(folder, model)
    except EndpointStartError as exc:
        print(f"warning: {exc}; its routes answer 503", file=sys.stderr)
        return None


def _read_ready(process: subprocess.Popen, found: dict[str, str]) -> None:
    for line in process.stdout:
        m = READY.match(line.strip())
        if m:
            found.update(state=m["state"], url=m["url"])
            break
    # keep draining so the child never blocks on a full pipe
    threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()


def proxy_env(model: str, runtime_url: str | None) -> dict[str, str]:
    """The heavy_proxy function's variables for ``model``; no URL: a closed port (the endpoint is missing)."""
    return {
        c.ENV_SAGEMAKER_ENDPOINT: local_endpoint_name(model),
        c.ENV_MODEL_NAME: model,
        c.ENV_SAGEMAKER_RUNTIME_URL: runtime_url or "http://127.0.0.1:9",
        c.ENV_ENDPOINT_ATTEMPTS: "1" if runtime_url is None else str(c.DEFAULT_ENDPOINT_ATTEMPTS),
    }


def forwarding_env(proxy: dict[str, str]) -> dict[str, str]:
    """The embeddings function's variables that forward its heavy model's requests, from the proxy's."""
    spec = {proxy[c.ENV_MODEL_NAME]: {"endpoint": proxy[c.ENV_SAGEMAKER_ENDPOINT]}}
    keep = (c.ENV_SAGEMAKER_RUNTIME_URL, c.ENV_ENDPOINT_ATTEMPTS)  # as maas.tools.local.server.FORWARDING_VARIABLES
    return {c.ENV_HEAVY_MODELS: json.dumps(spec), **{k: proxy[k] for k in keep if k in proxy}}
