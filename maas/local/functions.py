"""Load a function's handler (functions/<name>/app.py) in-process, the way the Lambda runtime would."""

from __future__ import annotations

import importlib.util
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from maas import paths
from maas.constants import ENV_MODEL_SOURCE


class FunctionNotFound(Exception):
    pass


def available_functions() -> list[str]:
    return sorted(p.parent.name for p in paths.FUNCTIONS_DIR.glob("*/app.py"))


def default_env(model: str = paths.DEFAULT_MODEL) -> dict[str, str]:
    """Environment a local run gives handlers unless the caller overrides it."""
    return {ENV_MODEL_SOURCE: str(paths.model_dir(model))}


def load_handler(name: str, env: dict[str, str] | None = None):
    """Import functions/<name>/app.py under a unique module name after applying ``env``; return lambda_handler."""
    path = paths.FUNCTIONS_DIR / name / "app.py"
    if not path.is_file():
        raise FunctionNotFound(f"no function '{name}': expected {path}; available: {', '.join(available_functions())}")
    for key, value in (env or {}).items():
        os.environ[key] = value
    module_name = f"maas_function_{name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module.lambda_handler


@dataclass
class LambdaContext:
    """The attributes of the Lambda context object that handlers and Powertools read."""

    function_name: str = "maas-local"
    memory_limit_in_mb: int = 1024
    timeout_s: float = 30.0
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/maas-local"
    log_stream_name: str = "local"
    function_version: str = "$LATEST"
    _started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self._started)) * 1000))


def model_missing_hint(env: dict[str, str]) -> str | None:
    source = env.get(ENV_MODEL_SOURCE) or os.environ.get(ENV_MODEL_SOURCE)
    if source and not source.startswith("s3://") and not Path(source).exists():
        return f"model package {source} does not exist; build it with: maas models build {Path(source).name}"
    return None
