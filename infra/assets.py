"""The folders and files the CDK app turns into assets: function code, layers, SageMaker model archives.

Function code is staged at synth (a copy of `functions/<name>/app.py` plus the runtime part of `maas/`), and so
are model layers and SageMaker archives when the model package is built (local copies, no network). The runtime
layer needs pip and PyPI, so synth never builds it: `python -m maas.tools.layers build-runtime` does.

Anything missing is replaced by a clearly named placeholder (a folder whose README says which command builds
the real thing), so that `cdk synth` works offline on a fresh clone. Every placeholder is recorded; the stacks
turn the records into synth warnings (errors under `maas:requireBuiltAssets`) and into a CloudFormation rule
that refuses to deploy the template.
"""

from __future__ import annotations

import gzip
import io
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from maas.tools import layers as builder
from maas.tools.paths import REPO_ROOT

# Parts of the shared package that are not function runtime (build pipelines, benchmark, local server, CLI).
HANDLER = "app.lambda_handler"
PLACEHOLDER_README = "README.md"


@dataclass(frozen=True)
class AssetPaths:
    """Where sources are read and staging outputs written; tests point these at temporary folders."""

    functions_dir: Path = REPO_ROOT / "functions"
    package_dir: Path = REPO_ROOT / "maas"
    models_dir: Path = REPO_ROOT / "models"
    layers_build_dir: Path = builder.BUILD_DIR
    staging_dir: Path = REPO_ROOT / "build" / "cdk"  # git-ignored
    runtime_requirements: Path = builder.RUNTIME_REQUIREMENTS


@dataclass(frozen=True)
class Placeholder:
    """An asset that is not built: what it stands for and the command that builds it."""

    what: str
    command: str
    path: Path


@dataclass(frozen=True)
class StagedAsset:
    path: Path  # a folder (code, layer) or a file (model.tar.gz)
    placeholder: Placeholder | None = None

    @property
    def built(self) -> bool:
        return self.placeholder is None


@dataclass
class AssetBuilder:
    """Stages assets for one synth and remembers which ones are placeholders."""

    paths: AssetPaths = field(default_factory=AssetPaths)
    placeholders: list[Placeholder] = field(default_factory=list)

    def _placeholder(self, key: str, what: str, command: str) -> StagedAsset:
        folder = self.paths.staging_dir / "placeholders" / key
        folder.mkdir(parents=True, exist_ok=True)
        # Fixed content, so the asset hash (and the template) is stable across synths.
        (folder / PLACEHOLDER_README).write_text(
            f"# PLACEHOLDER: {what} is not built\n\n"
            f"Build it with:\n\n    {command}\n\n"
            "This folder only lets `cdk synth` run on a fresh clone; a template that uses it cannot be deployed.\n"
        )
        record = Placeholder(what=what, command=command, path=folder)
        if record not in self.placeholders:
            self.placeholders.append(record)
        return StagedAsset(folder, record)

    def function_code(self, name: str) -> StagedAsset:
        """`functions/<name>/app.py` plus the runtime part of `maas/`, staged as one folder."""
        source = self.paths.functions_dir / name / "app.py"
        if not source.is_file():
            return self._placeholder(
                f"function-{name}",
                f"function code functions/{name}/app.py",
                f"write functions/{name}/app.py (handler {HANDLER}), then synth again",
            )
        target = self.paths.staging_dir / "functions" / name
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        shutil.copy2(source, target / "app.py")
        builder.copy_runtime_code(target, self.paths.package_dir)
        return StagedAsset(target)

    def runtime_layer(self, arch: str, python: str, layer: str = "runtime") -> StagedAsset:
        """A library layer built by `python -m maas.tools.layers build-runtime [--layer LAYER]`, if current."""
        output = builder.runtime_layer_dir(arch, python, self.paths.layers_build_dir, layer)
        requirements = self.paths.runtime_requirements if layer == "runtime" else builder.layer_requirements(layer)
        stamp = builder.runtime_stamp(arch, python, requirements, layer)
        if builder.is_current(output, stamp):
            return StagedAsset(output)
        state = "stale (its requirements changed)" if output.exists() else "not built"
        option = "" if layer == "runtime" else f" --layer {layer}"
        return self._placeholder(
            f"{layer}-{arch}-py{python}",
            f"{layer} layer for {arch}/Python {python} ({state})",
            f"python -m maas.tools.layers build-runtime{option} --arch {arch} --python {python}",
        )

    def model_layer(self, package: str, command: str | None = None) -> StagedAsset:
        """`models/<package>` staged as a layer (`/opt/models/<package>`); rebuilt when its manifest changes.

        `command` builds the package when it is missing (default `maas models build <package>`)."""
        if not (self.paths.models_dir / package / builder.MANIFEST).is_file():
            return self._placeholder(
                f"model-{package}",
                f"model package models/{package}",
                command or f"maas models build {package}",
            )
        return StagedAsset(
            builder.build_model_layer(package, models_dir=self.paths.models_dir, build_dir=self.paths.layers_build_dir)
        )

    def model_package(self, package: str, command: str | None = None) -> StagedAsset:
        """The package folder itself (uploaded to the model bucket for models served from S3)."""
        folder = self.paths.models_dir / package
        if not (folder / builder.MANIFEST).is_file():
            return self._placeholder(
                f"model-{package}", f"model package models/{package}", command or f"maas models build {package}"
            )
        return StagedAsset(folder)

    def sagemaker_archive(self, package: str) -> StagedAsset:
        """`model.tar.gz` of `models/<package>` for SageMaker; a placeholder archive when the package is missing."""
        if (self.paths.models_dir / package / builder.MANIFEST).is_file():
            return StagedAsset(
                builder.build_sagemaker_archive(
                    package, models_dir=self.paths.models_dir, build_dir=self.paths.layers_build_dir
                )
            )
        staged = self._placeholder(
            f"sagemaker-{package}", f"model package models/{package}", f"maas models build {package}"
        )
        archive = staged.path.parent / f"sagemaker-{package}.tar.gz"
        readme = (staged.path / PLACEHOLDER_README).read_bytes()
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            info = tarfile.TarInfo(PLACEHOLDER_README)
            info.size = len(readme)
            tar.addfile(info, io.BytesIO(readme))
        archive.write_bytes(gzip.compress(buffer.getvalue(), mtime=0))
        return StagedAsset(archive, staged.placeholder)
