"""Build Lambda layers and SageMaker model archives from the recipes in `layers/` and the packages in `models/`.

- runtime layer: `layers/runtime/requirements.txt` installed with pip for the Lambda platform
  (`--platform manylinux_2_X_<arch> --only-binary=:all: --python-version 3.14 --implementation cp`), so the
  wheels match Amazon Linux 2023 and the function's architecture whatever this machine is. With a wheel
  folder (`--wheel-dir`), pip runs `--no-index --find-links DIR`: fully offline.
- model layer: a model package copied (hard-linked where possible) to `models/<name>/`, which Lambda
  mounts at `/opt/models/<name>` (the runtime's default `MAAS_MODEL_SOURCE`).
- SageMaker archive: the same package as `model.tar.gz`, the format SageMaker model data must have, with the
  inference package (maas.heavy.endpoint) under `code/` and a SHA256SUMS of that code.

Each output has a stamp (recipe hash, platform, sources); `is_current` tells whether it must be rebuilt.
Nothing here runs at import time; the CDK app only reads stamps and never calls pip.

    python -m maas.tools.layers build-runtime --arch x86_64 --python 3.14 [--wheel-dir DIR]
    python -m maas.tools.layers build-runtime --layer images --arch x86_64 --python 3.14
    python -m maas.tools.layers build-model all-minilm-l6-v2
    python -m maas.tools.layers build-sagemaker all-minilm-l6-v2-fp32
    python -m maas.tools.layers status
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from maas.tools.layer_rules import NO_DEPS, normalize_name, prune_tree, strip_tree
from maas.tools.paths import MODELS_DIR, REPO_ROOT

LAYERS_DIR = REPO_ROOT / "layers"
BUILD_DIR = LAYERS_DIR / "build"  # git-ignored
RUNTIME_REQUIREMENTS = LAYERS_DIR / "runtime" / "requirements.txt"
# Library layers: `runtime` for every function; the others only for the functions that need them.
LIBRARY_LAYERS = ("runtime", "images")
ARCHITECTURES = {"x86_64": "x86_64", "arm64": "aarch64"}  # Lambda's name -> the wheel platform's
# Lambda's Python 3.12+ runtimes run on Amazon Linux 2023 (glibc 2.34). pip expands only the legacy
# `manylinux2014_*` alias to older tags, so every glibc level a wheel may be tagged with is listed.
GLIBC_MINORS = range(17, 35)
STAMP_SUFFIX = ".stamp.json"
MANIFEST = "manifest.json"


class LayerBuildError(Exception):
    """A layer or archive could not be built; the message says what to do."""


def manylinux_platforms(arch: str) -> list[str]:
    """pip `--platform` values for a Lambda architecture, newest glibc first."""
    try:
        machine = ARCHITECTURES[arch]
    except KeyError:
        raise LayerBuildError(f"unknown architecture {arch!r}; expected one of {sorted(ARCHITECTURES)}") from None
    return [f"manylinux_2_{minor}_{machine}" for minor in reversed(GLIBC_MINORS)] + [f"manylinux2014_{machine}"]


def runtime_layer_dir(arch: str, python: str, build_dir: Path = BUILD_DIR, layer: str = "runtime") -> Path:
    """Folder whose contents are a library layer (`python/...`, mounted at /opt/python): `runtime` by default."""
    return build_dir / f"{layer}-{arch}-py{python}"


def layer_requirements(layer: str = "runtime") -> Path:
    """The recipe of a library layer: layers/<layer>/requirements.txt."""
    if layer not in LIBRARY_LAYERS:
        raise LayerBuildError(f"unknown layer {layer!r}; expected one of {', '.join(LIBRARY_LAYERS)}")
    return LAYERS_DIR / layer / "requirements.txt"


def model_layer_dir(name: str, build_dir: Path = BUILD_DIR) -> Path:
    """Folder whose contents are the model layer (`models/<name>/...`, mounted at /opt/models/<name>)."""
    return build_dir / f"model-{name}"


def sagemaker_archive(name: str, build_dir: Path = BUILD_DIR) -> Path:
    return build_dir / f"sagemaker-{name}.tar.gz"


def stamp_path(output: Path) -> Path:
    """The stamp lives beside the output so that it is not part of the layer."""
    return output.parent / (output.name + STAMP_SUFFIX)


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def runtime_stamp(arch: str, python: str, requirements: Path = RUNTIME_REQUIREMENTS, layer: str = "runtime") -> dict:
    return {
        "kind": layer,
        "arch": arch,
        "python": python,
        "platforms": manylinux_platforms(arch),
        "requirements_sha256": _sha256_bytes(requirements.read_bytes()),
        "rules_sha256": _sha256_bytes((Path(__file__).parent / "layer_rules.py").read_bytes()),
    }


def model_stamp(package: Path) -> dict:
    """A model output is current while the package's manifest (which pins every file's sha256) is unchanged."""
    manifest = package / MANIFEST
    if not manifest.is_file():
        raise LayerBuildError(f"{package} is not a model package (no {MANIFEST}); build it with `maas models build`")
    return {"kind": "model", "package": package.name, "manifest_sha256": _sha256_bytes(manifest.read_bytes())}


def is_current(output: Path, expected: dict) -> bool:
    """True when ``output`` exists and was built from the same inputs as ``expected`` describes."""
    stamp = stamp_path(output)
    if not output.exists() or not stamp.is_file():
        return False
    try:
        return json.loads(stamp.read_text()) == expected
    except json.JSONDecodeError:
        return False


def write_stamp(output: Path, stamp: dict) -> None:
    stamp_path(output).write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n")


def split_requirements(requirements: Path) -> tuple[list[str], list[str]]:
    """(requirements installed with their dependencies, those installed without: layer_rules.NO_DEPS)."""
    with_deps, without = [], []
    for line in Path(requirements).read_text().splitlines():
        spec = line.split("#", 1)[0].strip()
        if not spec:
            continue
        name = normalize_name(re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0])
        (without if name in NO_DEPS else with_deps).append(spec)
    return with_deps, without


def pip_command(
    arch: str,
    python: str,
    target: Path,
    requirements: Path = RUNTIME_REQUIREMENTS,
    wheel_dir: Path | None = None,
    specs: list[str] | None = None,
    no_deps: bool = False,
) -> list[str]:
    """The pip invocation that installs the runtime for the Lambda platform into ``target``
    (from a requirements file, or from ``specs`` when given)."""
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    for platform in manylinux_platforms(arch):
        cmd += ["--platform", platform]
    cmd += [
        "--implementation",
        "cp",
        "--python-version",
        python,
        "--only-binary=:all:",
        # .pyc compiled by this interpreter would not match the Lambda runtime's Python; /opt is read-only there.
        "--no-compile",
        "--target",
        str(target),
    ]
    cmd += list(specs) if specs is not None else ["-r", str(requirements)]
    if no_deps:
        cmd.append("--no-deps")
    if wheel_dir is not None:
        cmd += ["--no-index", "--find-links", str(wheel_dir)]
    return cmd


def build_runtime(
    arch: str,
    python: str,
    *,
    wheel_dir: Path | None = None,
    build_dir: Path = BUILD_DIR,
    requirements: Path | None = None,
    force: bool = False,
    layer: str = "runtime",
) -> Path:
    """Install a library layer's requirements (layers/<layer>/requirements.txt) for Lambda's platform into
    ``<layer>-<arch>-py<python>/python``."""
    requirements = requirements or layer_requirements(layer)
    output = runtime_layer_dir(arch, python, build_dir, layer)
    stamp = runtime_stamp(arch, python, requirements, layer)
    if not force and is_current(output, stamp):
        return output
    staging = output.with_name(output.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "python").mkdir(parents=True)
    with_deps, without_deps = split_requirements(requirements)
    for specs, no_deps in ((with_deps, False), (without_deps, True)):
        if not specs:
            continue
        cmd = pip_command(arch, python, staging / "python", requirements, wheel_dir, specs=specs, no_deps=no_deps)
        result = subprocess.run(cmd, check=False)
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            hint = " (offline: is every wheel in --wheel-dir?)" if wheel_dir else ""
            raise LayerBuildError(f"pip failed with exit code {result.returncode}{hint}: {' '.join(cmd)}")
    # The same rules the benchmark measures and tests/unit/test_layer_rules.py proves: unused files out,
    # shared libraries stripped.
    prune_tree(staging / "python")
    strip_tree(staging / "python")
    shutil.rmtree(output, ignore_errors=True)
    staging.rename(output)
    write_stamp(output, stamp)
    return output


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def build_model_layer(name: str, *, models_dir: Path = MODELS_DIR, build_dir: Path = BUILD_DIR) -> Path:
    """Stage ``models/<name>`` as ``model-<name>/models/<name>`` (rebuilt only when the manifest changed)."""
    package = models_dir / name
    stamp = model_stamp(package)
    output = model_layer_dir(name, build_dir)
    if is_current(output, stamp):
        return output
    shutil.rmtree(output, ignore_errors=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(package, output / "models" / name, copy_function=_link_or_copy)
    write_stamp(output, stamp)
    return output


# What ships is `maas/` minus `maas/tools/` (builds, benchmarks, the local stack, the CLI): one rule, no deny-list.
TOOLS_DIR = "tools"
ENDPOINT_REQUIREMENTS = LAYERS_DIR / "endpoint" / "requirements.txt"
# model.tar.gz's code/: the entry points SageMaker's framework containers import, and the checksums of it all.
ENDPOINT_ENTRY = REPO_ROOT / "maas" / "heavy" / "endpoint" / "entry.py"  # copied as code/inference.py
CODE_SUMS = "SHA256SUMS"


def is_runtime(rel: Path) -> bool:
    """Whether a path relative to `maas/` ships: everything but tools/ and caches."""
    return rel.parts[:1] != (TOOLS_DIR,) and "__pycache__" not in rel.parts and rel.suffix != ".pyc"


def _not_runtime(folder, names: list[str]) -> list[str]:
    base = Path(folder)
    package = next(p for p in (base, *base.parents) if p.name == "maas")
    return [n for n in names if not is_runtime((base / n).relative_to(package))]


def copy_runtime_code(target: Path, package_dir: Path = REPO_ROOT / "maas") -> Path:
    """Copy the runtime part of the `maas` package to ``target/maas``."""
    return Path(shutil.copytree(package_dir, target / package_dir.name, ignore=_not_runtime))


def stage_endpoint_code(target: Path, requirements: Path = ENDPOINT_REQUIREMENTS) -> Path:
    """Write model.tar.gz's ``code/``: inference.py, requirements.txt, the runtime `maas` package and SHA256SUMS
    (checked by inference.py, maas/heavy/endpoint/entry.py, before it imports anything)."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ENDPOINT_ENTRY, target / "inference.py")
    shutil.copyfile(requirements, target / "requirements.txt")
    copy_runtime_code(target)
    files = sorted(p for p in target.rglob("*") if p.is_file() and p.name != CODE_SUMS)
    lines = [f"{_sha256_bytes(p.read_bytes())}  {p.relative_to(target).as_posix()}" for p in files]
    (target / CODE_SUMS).write_text("\n".join(lines) + "\n")
    return target


def _code_digest(requirements: Path) -> str:
    digest = hashlib.sha256(requirements.read_bytes())
    package_dir = REPO_ROOT / "maas"
    for path in sorted(package_dir.rglob("*.py")) + sorted((package_dir / "data").glob("*.toml")):
        rel = path.relative_to(package_dir)
        if is_runtime(rel):
            digest.update(rel.as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def build_sagemaker_archive(
    name: str, *, models_dir: Path = MODELS_DIR, build_dir: Path = BUILD_DIR, requirements: Path = ENDPOINT_REQUIREMENTS
) -> Path:
    """Pack ``models/<name>`` as a SageMaker ``model.tar.gz``: the package's files at the archive root
    (/opt/ml/model/...) and the inference package under ``code/``. Reproducible: same inputs, same bytes."""
    package = models_dir / name
    stamp = {**model_stamp(package), "kind": "sagemaker", "code_sha256": _code_digest(requirements)}
    output = sagemaker_archive(name, build_dir)
    if is_current(output, stamp):
        return output
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".tmp")
    staging = build_dir / f"sagemaker-{name}-code"
    shutil.rmtree(staging, ignore_errors=True)
    code = stage_endpoint_code(staging / "code", requirements)

    def reproducible(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        return info

    try:
        # ONNX weights barely compress; level 1 keeps the archive build fast. gzip's header carries no time here.
        with open(partial, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) as gz:
            with tarfile.open(fileobj=gz, mode="w") as tar:
                for path in sorted(p for p in package.rglob("*") if p.is_file()):
                    tar.add(path, arcname=str(path.relative_to(package)), filter=reproducible)
                for path in sorted(p for p in code.rglob("*") if p.is_file()):
                    tar.add(path, arcname=str(path.relative_to(code.parent)), filter=reproducible)
        partial.replace(output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    write_stamp(output, stamp)
    return output


def _status(build_dir: Path) -> int:
    outputs = sorted(p for p in build_dir.glob("*") if not p.name.endswith(STAMP_SUFFIX)) if build_dir.exists() else []
    if not outputs:
        print(f"nothing built under {build_dir}")
    for output in outputs:
        stamp = stamp_path(output)
        state = json.loads(stamp.read_text()) if stamp.is_file() else {"kind": "unknown (no stamp)"}
        print(f"{output.name}: {state.get('kind')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m maas.tools.layers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--build-dir", type=Path, default=BUILD_DIR, help=f"output folder (default {BUILD_DIR})")
    sub = parser.add_subparsers(dest="command", required=True)
    runtime = sub.add_parser("build-runtime", help="a library layer (default: runtime), for Lambda's platform")
    runtime.add_argument("--layer", choices=LIBRARY_LAYERS, default="runtime", help="layers/LAYER/requirements.txt")
    runtime.add_argument("--arch", choices=sorted(ARCHITECTURES), default="x86_64")
    runtime.add_argument("--python", default="3.14", help="the Lambda runtime's Python version (default 3.14)")
    runtime.add_argument("--wheel-dir", type=Path, help="install offline from this folder of wheels")
    runtime.add_argument("--force", action="store_true", help="rebuild even if the layer is current")
    model = sub.add_parser("build-model", help="a model layer from models/NAME")
    model.add_argument("name")
    model.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    archive = sub.add_parser("build-sagemaker", help="a SageMaker model.tar.gz from models/NAME")
    archive.add_argument("name")
    archive.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    sub.add_parser("status", help="list what is built")
    args = parser.parse_args(argv)
    try:
        if args.command == "build-runtime":
            out = build_runtime(
                args.arch,
                args.python,
                wheel_dir=args.wheel_dir,
                build_dir=args.build_dir,
                force=args.force,
                layer=args.layer,
            )
        elif args.command == "build-model":
            out = build_model_layer(args.name, models_dir=args.models_dir, build_dir=args.build_dir)
        elif args.command == "build-sagemaker":
            out = build_sagemaker_archive(args.name, models_dir=args.models_dir, build_dir=args.build_dir)
        else:
            return _status(args.build_dir)
    except LayerBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
