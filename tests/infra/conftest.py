"""Synthesized apps shared by the infrastructure tests (synth through the Python API: no CDK CLI, no network).

Three apps, each synthesized once with cdk-nag's AwsSolutions pack applied:
- built:   the default configuration with every asset present (small fakes of the right shape);
- fresh:   the default configuration on a fresh clone: no layer or model built, functions as in the repo;
- variant: the other branches: classic GPU endpoint (min 1), an S3-served model, arm64, SnapStart,
           provisioned concurrency, no gateway authorizer cache, the function URL front door, a subset of plans.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

# Node 20 works for jsii but prints an end-of-life banner on every start.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from infra.app import create_app  # noqa: E402
from infra.assets import AssetPaths  # noqa: E402
from maas.tools import layers as builder  # noqa: E402
from maas.tools.paths import REPO_ROOT  # noqa: E402

FUNCTION_FOLDERS = (
    "aggregator",
    "embeddings",
    "rerank",
    "classify",
    "image_classify",
    "v2",
    "jobs",
    "batches",
    "authorizer",
    "usage",
    "heavy_proxy",
    "batch_s3",
    "batch_sqs",
    "failed_events",
)
PACKAGES = (
    "all-minilm-l6-v2",
    "all-minilm-l6-v2-fast",
    "all-minilm-l6-v2-static",
    "all-minilm-l6-v2-fp32",
    "ticket-intents",
    "digits-cnn",
)


@dataclass
class Synth:
    app: cdk.App
    data: cdk.Stack
    service: cdk.Stack
    outdir: Path
    templates: dict[str, dict]
    messages: list[tuple[str, str, str]]  # (level, construct path, text)
    missing_context: list

    @property
    def data_template(self) -> dict:
        return self.templates[self.data.stack_name]

    @property
    def service_template(self) -> dict:
        return self.templates[self.service.stack_name]


def write_fake_package(models: Path, name: str) -> None:
    folder = models / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(b"\0" * 2048)
    (folder / "tokenizer.json").write_text("{}")
    (folder / "manifest.json").write_text(json.dumps({"name": name, "version": "1"}))


def fake_paths(root: Path, *, built: bool, python: str = "3.14", archs=("x86_64",)) -> AssetPaths:
    """A checkout whose build outputs exist (built) or not (a fresh clone, real functions/ folder)."""
    models, layers_build = root / "models", root / "layers-build"
    models.mkdir(parents=True)
    layers_build.mkdir(parents=True)
    functions = REPO_ROOT / "functions"
    if built:
        functions = root / "functions"
        for folder in FUNCTION_FOLDERS:
            (functions / folder).mkdir(parents=True)
            (functions / folder / "app.py").write_text("def lambda_handler(event, context):\n    return {}\n")
        for name in PACKAGES:
            write_fake_package(models, name)
        for arch in archs:
            for name in builder.LIBRARY_LAYERS:
                layer = builder.runtime_layer_dir(arch, python, layers_build, name)
                (layer / "python" / name).mkdir(parents=True)
                (layer / "python" / name / "__init__.py").write_text("")
                stamp = builder.runtime_stamp(arch, python, builder.layer_requirements(name), name)
                builder.write_stamp(layer, stamp)
    return AssetPaths(
        functions_dir=functions,
        models_dir=models,
        layers_build_dir=layers_build,
        staging_dir=root / "staging",
    )


class NetworkBlocked(AssertionError):
    pass


def synthesize(root: Path, context: dict, paths: AssetPaths) -> Synth:
    """Synthesize with cdk-nag applied and Python's sockets refusing to connect (synth must be offline)."""
    original = socket.socket.connect

    def refuse(self, address):
        raise NetworkBlocked(f"synth tried to connect to {address}")

    socket.socket.connect = refuse
    try:
        app, data, service = create_app(context, paths=paths, outdir=str(root / "cdk.out"))
        cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
        assembly = app.synth()
    finally:
        socket.socket.connect = original
    templates = {s.stack_name: json.loads(Path(s.template_full_path).read_text()) for s in assembly.stacks}
    messages = [(m.level.name, m.id, str(m.entry.data)) for stack in assembly.stacks for m in stack.messages]
    missing = json.loads((root / "cdk.out" / "manifest.json").read_text()).get("missing", [])
    return Synth(app, data, service, root / "cdk.out", templates, messages, missing)


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> Synth:
    root = tmp_path_factory.mktemp("built")
    return synthesize(root, {}, fake_paths(root, built=True))


@pytest.fixture(scope="session")
def fresh(tmp_path_factory) -> Synth:
    root = tmp_path_factory.mktemp("fresh")
    return synthesize(root, {}, fake_paths(root, built=False))


VARIANT_CONFIG = {
    "region": "eu-west-1",
    "python": "3.14",
    "plans": ["free", "pro"],
    "models": [
        {"name": "all-minilm-l6-v2", "task": "embeddings", "runtime": "s3", "version": "3"},
        # an older version, still listed: the embeddings function keeps serving it (`all-minilm-l6-v2@2`)
        {
            "name": "all-minilm-l6-v2",
            "task": "embeddings",
            "runtime": "s3",
            "version": "2",
            "package": "all-minilm-l6-v2-v2",
        },
        {
            "name": "all-minilm-l6-v2-fp32",
            "task": "embeddings",
            "runtime": "sagemaker",
            "sagemaker": {"min_capacity": 1, "max_capacity": 3, "target_invocations_per_minute": 300},
        },
    ],
    "tasks": {"embeddings": {"memory_mb": 2048, "snap_start": True}},
    "authorizer": {"memory_mb": 256, "reserved_concurrency": 5, "provisioned_concurrency": 2},
    "authorizer_cache": False,
    "front_door": "function_url",
    "tracing": False,
    "alarms": {"email": "ops@example.com"},
}


@pytest.fixture(scope="session")
def variant(tmp_path_factory) -> Synth:
    root = tmp_path_factory.mktemp("variant")
    config = root / "variant.json"
    config.write_text(json.dumps(VARIANT_CONFIG))
    context = {
        "maas:config": str(config),
        "maas:architecture": "arm64",
        "maas:gpuInstanceType": "ml.g6.xlarge",
    }
    paths = fake_paths(root, built=True, archs=("arm64",))
    write_fake_package(paths.models_dir, "all-minilm-l6-v2-v2")
    return synthesize(root, context, paths)


@pytest.fixture(scope="session")
def all_synths(built, fresh, variant) -> dict[str, Synth]:
    return {"built": built, "fresh": fresh, "variant": variant}
