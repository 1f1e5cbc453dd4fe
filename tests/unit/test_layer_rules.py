"""The pruned, stripped runtime layer still serves: the embeddings handler runs from it alone."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from maas import paths
from maas.bench.common import runtime_requirements
from maas.layer_rules import is_pruned, materialize_runtime


def test_prune_rules():
    assert is_pruned("onnxruntime/capi/libonnxruntime.so.1.32.0")
    assert is_pruned("numpy/_core/tests/test_api.py")
    assert is_pruned("onnxruntime/transformers/optimizer.py")
    assert not is_pruned("onnxruntime/capi/onnxruntime_pybind11_state.cpython-311-x86_64-linux-gnu.so")
    assert not is_pruned("numpy/linalg/__init__.py")
    assert not is_pruned("tokenizers/tokenizers.abi3.so")


def test_handler_serves_from_the_pruned_layer_alone(model_dir, tmp_path):
    python = materialize_runtime(runtime_requirements(paths.REPO_ROOT / "pyproject.toml"), tmp_path / "layer")
    assert not (python / "huggingface_hub").exists() and not (python / "numpy" / "random").exists()
    provided = tmp_path / "lambda-runtime"  # what the Lambda Python runtime itself provides
    provided.mkdir()
    for module in ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six"):
        spec = importlib.util.find_spec(module)
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (provided / source.name).symlink_to(source)
    code = tmp_path / "code"  # what the function's code asset holds: app.py and the maas package
    shutil.copytree(paths.REPO_ROOT / "maas", code / "maas", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(paths.FUNCTIONS_DIR / "embeddings" / "app.py", code / "app.py")
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.path[:0] = [{str(code)!r}, {str(python)!r}, {str(provided)!r}]
        import app
        from maas.local.apigw import make_event
        from maas.local.functions import LambdaContext
        event = make_event("POST", "/v1/embeddings", headers={{"Content-Type": "application/json"}},
                           body=json.dumps({{"input": ["from the layer"]}}).encode())
        result = app.lambda_handler(event, LambdaContext())
        body = json.loads(result["body"])
        print("RESULT", result["statusCode"], len(body["data"][0]["embedding"]),
              [m for m in sys.modules if m.split(".")[0] in ("torch", "huggingface_hub", "site")])
        """
    )
    env = {"MAAS_MODEL_SOURCE": str(model_dir), "MAAS_METERING": "off", "PATH": "/usr/bin:/bin"}
    # -S: no site-packages at all; only the layer, the code and the standard library are importable.
    out = subprocess.run([sys.executable, "-S", "-c", script], env=env, capture_output=True, text=True, timeout=120)
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT")]
    assert line, out.stderr[-3000:]
    assert line[0] == "RESULT 200 384 []"
