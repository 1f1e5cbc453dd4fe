"""The layer builder: pip for Lambda's platform (offline with a wheel folder), model layers, SageMaker archives."""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from maas.tools import layers
from tests.infra.conftest import write_fake_package


def test_pip_targets_the_lambda_platform_whatever_this_machine_is(tmp_path):
    cmd = layers.pip_command("arm64", "3.14", tmp_path / "python")
    platforms = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--platform"]
    assert "manylinux_2_34_aarch64" in platforms and "manylinux2014_aarch64" in platforms
    assert all("aarch64" in p for p in platforms)
    assert {"--only-binary=:all:", "--no-compile"} <= set(cmd)
    assert cmd[cmd.index("--python-version") + 1] == "3.14"
    assert cmd[cmd.index("--implementation") + 1] == "cp"
    assert cmd[cmd.index("--target") + 1] == str(tmp_path / "python")
    assert "--no-index" not in cmd


def test_a_wheel_folder_makes_the_build_offline(tmp_path):
    cmd = layers.pip_command("x86_64", "3.12", tmp_path, wheel_dir=tmp_path / "wheels")
    assert "--no-index" in cmd and cmd[cmd.index("--find-links") + 1] == str(tmp_path / "wheels")
    assert "manylinux_2_17_x86_64" in cmd


def test_unknown_architecture_is_refused():
    with pytest.raises(layers.LayerBuildError, match="unknown architecture"):
        layers.manylinux_platforms("ppc64le")


def test_runtime_build_installs_no_deps_packages_apart_prunes_and_is_current_after(tmp_path, monkeypatch):
    calls = []

    def fake_pip(cmd, check):
        calls.append(cmd)
        target = Path(cmd[cmd.index("--target") + 1])
        (target / "numpy" / "random").mkdir(parents=True, exist_ok=True)
        (target / "numpy" / "random" / "_generator.py").write_text("")
        (target / "numpy" / "__init__.py").write_text("")
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(layers.subprocess, "run", fake_pip)
    out = layers.build_runtime("x86_64", "3.14", build_dir=tmp_path)
    assert (out / "python" / "numpy").is_dir() and out.name == "runtime-x86_64-py3.14"
    assert not (out / "python" / "numpy" / "random").exists(), "layer_rules.PRUNE applied, emptied folders removed"
    assert "--no-deps" not in calls[0] and "onnxruntime>=1.20" in calls[0]
    assert "--no-deps" in calls[1] and [c for c in calls[1] if c.startswith("tokenizers")]
    assert layers.is_current(out, layers.runtime_stamp("x86_64", "3.14"))
    layers.build_runtime("x86_64", "3.14", build_dir=tmp_path)
    assert len(calls) == 2, "a current layer is not rebuilt"
    assert not layers.is_current(out, layers.runtime_stamp("arm64", "3.14"))


def test_failed_pip_leaves_no_half_built_layer(tmp_path, monkeypatch):
    monkeypatch.setattr(layers.subprocess, "run", lambda cmd, check: subprocess.CompletedProcess(cmd, 1))
    with pytest.raises(layers.LayerBuildError, match="offline"):
        layers.build_runtime("x86_64", "3.14", build_dir=tmp_path, wheel_dir=tmp_path / "wheels")
    assert list(tmp_path.iterdir()) == []


def test_model_layer_puts_the_package_under_models_and_rebuilds_when_the_manifest_changes(tmp_path):
    models, build = tmp_path / "models", tmp_path / "build"
    write_fake_package(models, "m")
    out = layers.build_model_layer("m", models_dir=models, build_dir=build)
    assert sorted(p.name for p in (out / "models" / "m").iterdir()) == ["manifest.json", "model.onnx", "tokenizer.json"]
    assert not (out / "models" / "m" / "manifest.json").with_suffix(".stamp.json").exists()
    (models / "m" / "manifest.json").write_text(json.dumps({"name": "m", "version": "2"}))
    assert not layers.is_current(out, layers.model_stamp(models / "m"))
    out = layers.build_model_layer("m", models_dir=models, build_dir=build)
    assert json.loads((out / "models" / "m" / "manifest.json").read_text())["version"] == "2"


def test_sagemaker_archive_has_the_package_at_its_root_the_code_beside_it_and_is_reproducible(tmp_path):
    models, build = tmp_path / "models", tmp_path / "build"
    write_fake_package(models, "m")
    archive = layers.build_sagemaker_archive("m", models_dir=models, build_dir=build)
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        root = sorted(n for n in names if "/" not in n)
        assert root == ["manifest.json", "model.onnx", "tokenizer.json"]
        code = {n.removeprefix("code/") for n in names if n.startswith("code/")}
        assert {"inference.py", "requirements.txt", "SHA256SUMS", "maas/heavy/endpoint/inference.py"} <= code
        assert not any(n.startswith(("maas/tools/build/", "maas/tools/local/", "maas/tools/bench/")) for n in code)
        assert "onnxruntime-gpu" in tar.extractfile("code/requirements.txt").read().decode()
        sums = tar.extractfile("code/SHA256SUMS").read().decode().splitlines()
        assert {line.split("  ", 1)[1] for line in sums} == code - {"SHA256SUMS"}
    first = archive.read_bytes()
    archive.unlink()
    assert layers.build_sagemaker_archive("m", models_dir=models, build_dir=build).read_bytes() == first


def test_missing_package_says_how_to_build_it(tmp_path):
    with pytest.raises(layers.LayerBuildError, match="maas models build"):
        layers.build_model_layer("absent", models_dir=tmp_path, build_dir=tmp_path / "build")


def test_cli_builds_a_model_layer(tmp_path, capsys):
    write_fake_package(tmp_path / "models", "m")
    code = layers.main(
        ["--build-dir", str(tmp_path / "b"), "build-model", "m", "--models-dir", str(tmp_path / "models")]
    )
    assert code == 0 and capsys.readouterr().out.strip().endswith("model-m")


def test_library_layers_have_their_own_recipes():
    """Pillow is the images layer's, not the runtime layer's: the text functions never carry it."""
    assert "pillow" in layers.layer_requirements("images").read_text()
    assert "pillow" not in layers.layer_requirements("runtime").read_text().lower()
    assert layers.runtime_layer_dir("arm64", "3.14", Path("b"), "images") == Path("b/images-arm64-py3.14")
    with pytest.raises(layers.LayerBuildError, match="unknown layer"):
        layers.layer_requirements("gpu")
