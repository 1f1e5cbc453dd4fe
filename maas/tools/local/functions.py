"""Load a function's handler (functions/<name>/app.py) in-process, the way the Lambda runtime would."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from maas.settings.names import DEFAULT_IMAGE_MODEL, ENV_MODEL_SOURCE
from maas.tools import paths

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"


class FunctionNotFound(Exception):
    pass


def available_functions(functions_dir: Path = paths.FUNCTIONS_DIR) -> list[str]:
    return sorted(p.parent.name for p in Path(functions_dir).glob("*/app.py"))


# Functions whose MAAS_MODEL_SOURCE is not the embedding package, and the package they serve locally.
FUNCTION_MODELS = {"image_classify": DEFAULT_IMAGE_MODEL}


def default_env(function: str | None = None) -> dict[str, str]:
    """Environment a local run gives a function's handler unless the caller overrides it."""
    return {ENV_MODEL_SOURCE: str(paths.model_dir(FUNCTION_MODELS.get(function, paths.DEFAULT_MODEL)))}


@contextmanager
def patched_environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set variables for the duration of the block, then restore what was there."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def load_handler(
    name: str, env: Mapping[str, str] | None = None, functions_dir: Path = paths.FUNCTIONS_DIR
) -> Callable[[dict, object], dict]:
    """Import functions/<name>/app.py under its own module name and return its lambda_handler.

    The function's variables are set while its module initialises (where its settings object reads
    them) and restored afterwards, so two functions may give the same variable different values.
    """
    path = Path(functions_dir) / name / "app.py"
    if not path.is_file():
        known = ", ".join(available_functions(functions_dir)) or "none"
        raise FunctionNotFound(f"no function '{name}': expected {path}; available: {known}")
    module_name = "maas_function_" + re.sub(r"\W", "_", name)
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    with patched_environ(env or {}):
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(module_name, None)
            raise
    handler = getattr(module, "lambda_handler", None)
    if not callable(handler):
        raise FunctionNotFound(f"function '{name}': {path} defines no lambda_handler(event, context)")
    return handler


@dataclass
class LambdaContext:
    """The attributes of the Lambda context object that handlers and Powertools read."""

    function_name: str = "maas-local"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timeout_s: float = 29.0  # API Gateway's integration timeout
    memory_limit_in_mb: int = 1024
    function_version: str = "$LATEST"
    _started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self._started)) * 1000))


def model_missing_hint(env: Mapping[str, str]) -> str | None:
    source = env.get(ENV_MODEL_SOURCE) or os.environ.get(ENV_MODEL_SOURCE)
    if source and not source.startswith("s3://") and not Path(source).exists():
        return f"model package {source} does not exist; build it with: maas models build {Path(source).name}"
    return None
