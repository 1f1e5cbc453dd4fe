"""What the function runtime layer leaves out: dependencies never used at run time, and files inside
the wheels that inference never loads. One place, used by the layer builder and by the benchmark's
deployment-size measurement, and proven by a test that serves from a pruned copy (tests/unit/test_layer_rules.py).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from fnmatch import fnmatch
from importlib import metadata
from pathlib import Path

# Installed without their requirements: tokenizers requires huggingface-hub (and with it hf-xet, httpx,
# pyyaml, fsspec, ~30 MB) only for Hub downloads; Tokenizer.from_file never imports it.
NO_DEPS = frozenset({"tokenizers"})
# Provided by the Lambda Python runtime.
PROVIDED = frozenset({"boto3", "botocore", "s3transfer"})

# site-packages-relative POSIX paths (fnmatch patterns) removed from the layer.
PRUNE = (
    # The C API library for other languages; the Python binding links ORT statically (ldd shows no dependency).
    "onnxruntime/capi/libonnxruntime.so*",
    # Offline tools: the transformer optimizer, quantization, model tools, test data.
    "onnxruntime/transformers/*",
    "onnxruntime/quantization/*",
    "onnxruntime/tools/*",
    "onnxruntime/datasets/*",
    # Tests and build-time helpers of numpy.
    "numpy/*tests/*",
    "numpy/f2py/*",
    "numpy/distutils/*",
    "numpy/_pyinstaller/*",
    "numpy/typing/tests/*",
    "numpy/_core/_simd*",  # a SIMD test helper
    # Submodules numpy imports lazily and onnxruntime never touches (only numpy.linalg loads with numpy).
    "numpy/random/*",
    "numpy/fft/*",
    "numpy/polynomial/*",
    "numpy/ma/*",
    "numpy/doc/*",
    # Pillow: the image functions decode PNG and JPEG only (maas.inference.images), through PIL/_imaging, which links
    # libjpeg, libtiff, libopenjp2 and libxcb. Fonts, AVIF, WebP, colour management and Tk load their own
    # extension and libraries, only when used; without them Pillow reports those features as unavailable.
    "PIL/_avif*",
    "PIL/_imagingft*",
    "PIL/_imagingcms*",
    "PIL/_imagingtk*",
    "PIL/_webp*",
    "pillow.libs/libavif-*",
    "pillow.libs/libfreetype-*",
    "pillow.libs/libharfbuzz-*",
    "pillow.libs/libbrotli*",
    "pillow.libs/libpng16-*",  # only libfreetype uses it: Pillow's PNG codec is its own, on zlib
    "pillow.libs/liblcms2-*",
    "pillow.libs/libwebp*",
    "pillow.libs/libsharpyuv-*",
    # Type stubs are for editors, not for the interpreter.
    "*.pyi",
    "wrapt-stubs/*",
    # PROVIDED by the Lambda runtime, pulled in as requirements (aws-xray-sdk requires botocore): ~30 MB.
    "boto3/*",
    "boto3-*.dist-info/*",
    "botocore/*",
    "botocore-*.dist-info/*",
    "s3transfer/*",
    "s3transfer-*.dist-info/*",
)


def is_pruned(relpath: str) -> bool:
    """Whether a site-packages-relative path is left out of the runtime layer."""
    return any(fnmatch(relpath, pattern) for pattern in PRUNE)


def normalize_name(name: str) -> str:
    """A distribution name in PEP 503 normal form (``Typing_Extensions`` -> ``typing-extensions``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(dist_name: str) -> list[str]:
    """Names of the distributions ``dist_name`` requires on this interpreter and platform, without extras.

    Requirements behind an extra (``; extra == "dev"``) or a marker false here are left out; a requirement's
    own extras (``foo[bar]``) are not followed.
    """
    from packaging.requirements import Requirement

    names = []
    for spec in metadata.requires(dist_name) or []:
        req = Requirement(spec)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        names.append(normalize_name(req.name))
    return names


def dependency_closure(
    roots, exclude=frozenset(), recursive: bool = True, leaves=frozenset()
) -> tuple[list[str], list[str]]:
    """(installed distributions reachable from ``roots`` in breadth-first order, required ones not installed).

    ``exclude`` names are neither counted nor followed; ``leaves`` are counted but their requirements not followed.
    """
    excluded = {normalize_name(n) for n in exclude}
    leaf_names = {normalize_name(n) for n in leaves}
    queue = [normalize_name(n) for n in roots]
    seen: set[str] = set()
    found, missing = [], []
    while queue:
        name = queue.pop(0)
        if name in seen or name in excluded:
            continue
        seen.add(name)
        try:
            requires = requirement_names(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
            continue
        found.append(name)
        if recursive and name not in leaf_names:
            queue.extend(requires)
    return found, missing


def distribution_files(name: str) -> dict[str, int]:
    """Absolute path -> size of every installed file the distribution's RECORD lists that exists."""
    dist = metadata.distribution(name)
    sizes = {}
    for entry in dist.files or []:
        path = os.path.normpath(os.path.abspath(dist.locate_file(entry)))
        try:
            sizes[path] = os.stat(path).st_size
        except OSError:  # RECORD may list files that were never written (e.g. bytecode not compiled)
            continue
    return sizes


def runtime_layer_files(roots) -> dict[str, tuple[str, int]]:
    """site-packages-relative path -> (absolute path, size) of every file the runtime layer ships:
    the closure of ``roots`` (less PROVIDED, NO_DEPS not followed), minus PRUNE and bytecode caches."""
    names, missing = dependency_closure(roots, PROVIDED, leaves=NO_DEPS)
    if missing:
        raise LookupError(f"runtime distributions not installed: {', '.join(missing)}")
    files: dict[str, tuple[str, int]] = {}
    for name in names:
        dist = metadata.distribution(name)
        base = os.path.normpath(os.path.abspath(dist.locate_file("")))
        for path, size in distribution_files(name).items():
            rel = os.path.relpath(path, base).replace(os.sep, "/")
            if rel.startswith("..") or is_pruned(rel):
                continue
            files.setdefault(rel, (path, size))
    return files


def prune_tree(root: Path) -> int:
    """Delete the PRUNE paths under a layer's python/ folder; return the bytes removed."""
    removed = 0
    for path in sorted(Path(root).rglob("*")):
        if path.is_file() and is_pruned(path.relative_to(root).as_posix()):
            removed += path.stat().st_size
            path.unlink()
    for folder in sorted((p for p in Path(root).rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()  # folders the pruning emptied
    return removed


def strip_tree(root: Path) -> int:
    """`strip --strip-unneeded` the shared libraries (symbols are for debuggers, not for Lambda); returns
    the bytes saved, 0 where no strip tool exists. Libraries auditwheel vendored into `<pkg>.libs/` are left
    alone: patchelf rewrote their headers, and stripping them breaks loading ("not page-aligned")."""
    tool = shutil.which("strip")
    if tool is None:
        return 0
    saved = 0
    for path in Path(root).rglob("*.so*"):
        if not path.is_file() or path.is_symlink() or path.parent.name.endswith(".libs"):
            continue
        before = path.stat().st_size
        if subprocess.run([tool, "--strip-unneeded", str(path)], capture_output=True).returncode == 0:
            saved += before - path.stat().st_size
    return saved


def materialize_runtime(roots, dest: Path) -> Path:
    """The runtime layer's python/ folder built from this interpreter's installed distributions
    (same rules as the layer builder): for measuring it and for proving it serves."""
    target = Path(dest) / "python"
    for rel, (src, _) in runtime_layer_files(roots).items():
        out = target / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, out)
    strip_tree(target)
    return target
