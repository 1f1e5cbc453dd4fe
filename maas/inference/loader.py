"""Find, fetch and verify model packages: a layer path (/opt/...), a local folder, or s3://bucket/prefix.

Every file listed in the manifest is checked for size and sha256 before a session is built; a package
that fails is refused with ModelPackageError naming the file, never served.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from maas.inference.package import MANIFEST, Manifest, read_manifest, sha256_file


class ModelPackageError(Exception):
    """A model package is missing, incomplete, corrupt or unreadable."""


def verify_package(folder: Path) -> Manifest:
    """Check manifest.json and every file it lists (presence, size, sha256); return the manifest."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelPackageError(f"model package not found: {folder} is not a directory")
    if not (folder / MANIFEST).is_file():
        raise ModelPackageError(f"model package {folder} has no {MANIFEST}")
    try:
        manifest = read_manifest(folder)
    except Exception as exc:
        raise ModelPackageError(f"model package {folder}: {MANIFEST} is invalid: {exc}") from exc
    if "model.onnx" not in manifest.files:
        raise ModelPackageError(f"model package {folder}: manifest lists no model.onnx")
    for name, entry in manifest.files.items():
        path = folder / name
        if not path.is_file():
            raise ModelPackageError(f"model package {folder}: missing file {name}")
        size = path.stat().st_size
        if size != entry.size:
            raise ModelPackageError(
                f"model package {folder}: {name} is {size} bytes, manifest says {entry.size} (truncated or replaced)"
            )
        digest = sha256_file(path)
        if digest != entry.sha256:
            raise ModelPackageError(f"model package {folder}: {name} sha256 {digest[:12]}... does not match manifest")
    return manifest


def _split_s3(uri: str) -> tuple[str, str]:
    rest = uri[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ModelPackageError(f"bad S3 model source {uri!r}: expected s3://bucket/prefix")
    return bucket, prefix.strip("/")


def download_s3_package(uri: str, cache_dir: Path, s3_client=None) -> Path:
    """Download a package from S3 into ``cache_dir`` once; later calls reuse the verified copy.

    Files land under a temporary name and are renamed only after their sha256 matches, so a crash
    mid-download never leaves a file that looks complete.
    """
    import json

    bucket, prefix = _split_s3(uri)
    if s3_client is None:
        import boto3

        s3_client = boto3.client("s3")
    target = Path(cache_dir) / bucket / (prefix or "_root")
    if target.is_dir():
        try:
            verify_package(target)
            return target
        except ModelPackageError:
            shutil.rmtree(target, ignore_errors=True)
    key = lambda name: f"{prefix}/{name}" if prefix else name  # noqa: E731
    try:
        raw = s3_client.get_object(Bucket=bucket, Key=key(MANIFEST))["Body"].read()
        manifest = Manifest.model_validate(json.loads(raw))
    except ModelPackageError:
        raise
    except Exception as exc:
        raise ModelPackageError(f"cannot read {uri}/{MANIFEST}: {exc}") from exc
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=_ensure(Path(cache_dir))))
    try:
        (staging / MANIFEST).write_bytes(raw)
        for name, entry in manifest.files.items():
            partial = staging / f"{name}.part"
            try:
                s3_client.download_file(bucket, key(name), str(partial))
            except Exception as exc:
                raise ModelPackageError(f"cannot download {uri}/{name}: {exc}") from exc
            if partial.stat().st_size != entry.size or sha256_file(partial) != entry.sha256:
                raise ModelPackageError(f"{uri}/{name} does not match its manifest entry (size or sha256); refused")
            os.replace(partial, staging / name)
        verify_package(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def resolve_package(source: str, cache_dir: Path, s3_client=None) -> tuple[Path, Manifest]:
    """Turn a model source (folder path or s3:// URI) into a verified local folder and its manifest."""
    if source.startswith("s3://"):
        folder = download_s3_package(source, cache_dir, s3_client)
        # download_s3_package verified every file it wrote or reused.
        return folder, read_manifest(folder)
    folder = Path(source)
    return folder, verify_package(folder)
