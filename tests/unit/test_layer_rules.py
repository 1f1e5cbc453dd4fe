"""The pruned, stripped runtime layer still serves: the embeddings and image handlers run from it alone."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from maas.tools import paths
from maas.tools.bench.common import runtime_requirements
from maas.tools.layer_rules import is_pruned, materialize_runtime


def test_prune_rules():
    assert is_pruned("onnxruntime/capi/libonnxruntime.so.1.32.0")
    assert is_pruned("numpy/_core/tests/test_api.py")
    assert is_pruned("onnxruntime/transformers/optimizer.py")
    assert is_pruned("pillow.libs/libavif-c6062d5f.so.16.4.2") and is_pruned("PIL/_imagingft.cpython-311.so")
    assert not is_pruned("onnxruntime/capi/onnxruntime_pybind11_state.cpython-311-x86_64-linux-gnu.so")
    assert not is_pruned("numpy/linalg/__init__.py")
    assert not is_pruned("tokenizers/tokenizers.abi3.so")
    assert not is_pruned("PIL/_imaging.cpython-311-x86_64-linux-gnu.so")
    assert not is_pruned("pillow.libs/libjpeg-6dc8d115.so.62.4.0")


@pytest.fixture(scope="module")
def layer(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(the runtime layer's python/, what the Lambda runtime provides, the code asset's maas package root)."""
    root = tmp_path_factory.mktemp("layer")
    python = materialize_runtime(runtime_requirements(paths.REPO_ROOT / "pyproject.toml"), root / "layer")
    provided = root / "lambda-runtime"  # what the Lambda Python runtime itself provides
    provided.mkdir()
    for module in ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six"):
        spec = importlib.util.find_spec(module)
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (provided / source.name).symlink_to(source)
    code = root / "code"  # what every function's code asset holds: the maas package (and its app.py)
    shutil.copytree(paths.REPO_ROOT / "maas", code / "maas", ignore=shutil.ignore_patterns("__pycache__"))
    return python, provided, code


def _serve(layer, tmp_path: Path, function: str, request: str, env: dict[str, str]) -> str:
    """Run ``request`` (code that prints a RESULT line) against functions/<function>/app.py in a Python that
    sees only the layer, the code and the standard library; return the RESULT line."""
    python, provided, code = layer
    app = tmp_path / "app"
    app.mkdir()
    shutil.copy(paths.FUNCTIONS_DIR / function / "app.py", app / "app.py")
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.path[:0] = [{str(app)!r}, {str(code)!r}, {str(python)!r}, {str(provided)!r}]
        import app
        from maas.tools.local.apigw import make_event
        from maas.tools.local.functions import LambdaContext
        """
    ) + textwrap.dedent(request)
    env = {**env, "MAAS_METERING": "off", "PATH": "/usr/bin:/bin"}
    # -S: no site-packages at all; only the layer, the code and the standard library are importable.
    out = subprocess.run([sys.executable, "-S", "-c", script], env=env, capture_output=True, text=True, timeout=120)
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT")]
    assert line, out.stderr[-3000:]
    return line[0]


def test_handler_serves_from_the_pruned_layer_alone(layer, model_dir, tmp_path):
    python = layer[0]
    assert not (python / "huggingface_hub").exists() and not (python / "numpy" / "random").exists()
    request = """
        event = make_event("POST", "/v1/embeddings", headers={"Content-Type": "application/json"},
                           body=json.dumps({"input": ["from the layer"]}).encode())
        result = app.lambda_handler(event, LambdaContext())
        body = json.loads(result["body"])
        print("RESULT", result["statusCode"], len(body["data"][0]["embedding"]),
              [m for m in sys.modules if m.split(".")[0] in ("torch", "huggingface_hub", "site", "PIL")])
        """
    line = _serve(layer, tmp_path, "embeddings", request, {"MAAS_MODEL_SOURCE": str(model_dir)})
    assert line == "RESULT 200 384 []"  # no Pillow import on the text functions' cold start


@pytest.fixture(scope="module")
def image_layer(layer, tmp_path_factory) -> tuple[Path, Path, Path]:
    """The runtime layer plus the images layer (layers/images: Pillow), as Lambda merges them under /opt/python."""
    python = materialize_runtime(
        runtime_requirements(paths.REPO_ROOT / "pyproject.toml") + ["pillow"], tmp_path_factory.mktemp("images")
    )
    return python, layer[1], layer[2]


def test_the_runtime_layer_has_no_pillow(layer):
    assert not list(layer[0].glob("PIL")) and not list(layer[0].glob("pillow*"))


def test_image_handler_decodes_png_and_jpeg_from_the_pruned_layer(image_layer, digits_dir, tmp_path):
    layer = image_layer
    from maas.tools.build.digits import load_split, render

    split = load_split()
    png, jpeg = render(split["x_test"][0], 32), render(split["x_test"][1], 64, fmt="JPEG", resample="bilinear")
    assert not list(layer[0].glob("PIL/_avif*")) and list(layer[0].glob("PIL/_imaging.*"))
    (tmp_path / "digit.png").write_bytes(png)
    (tmp_path / "digit.jpg").write_bytes(jpeg)
    request = f"""
        from pathlib import Path
        labels = []
        for kind, name in (("image/png", "digit.png"), ("image/jpeg", "digit.jpg")):
            body = (Path({str(tmp_path)!r}) / name).read_bytes()
            event = make_event("POST", "/v1/images/classify", headers={{"Content-Type": kind}}, body=body)
            result = app.lambda_handler(event, LambdaContext())
            labels.append((result["statusCode"], json.loads(result["body"])[0]["label"]))
        print("RESULT", labels)
        """
    line = _serve(layer, tmp_path, "image_classify", request, {"MAAS_MODEL_SOURCE": str(digits_dir)})
    expected = [(200, str(split["y_test"][0])), (200, str(split["y_test"][1]))]
    assert line == f"RESULT {expected}"
