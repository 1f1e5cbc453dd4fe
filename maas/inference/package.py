"""The model package contract: a folder with model.onnx, tokenizer.json (text models) and manifest.json.

The manifest records every file's sha256 and size; nothing loads a model without checking them.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MANIFEST = "manifest.json"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
REPORT_FILE = "report.json"  # a trained classifier's held-out evaluation (also in the manifest's `evaluation`)
_CHUNK = 1 << 20


class FileEntry(BaseModel):
    sha256: str
    size: int


class TensorSpec(BaseModel):
    name: str
    datatype: str
    shape: list[int | str]


class Quantization(BaseModel):
    method: str
    weight_dtype: str | None = None
    granularity: str | None = None
    activations: str | None = None
    details: str = ""
    tried: list[dict] = Field(default_factory=list)


class QualityReport(BaseModel):
    reference: str
    eval_set: str
    eval_set_sha256: str
    n: int
    min_cosine: float
    mean_cosine: float
    p01_cosine: float
    fp32_bytes: int
    model_bytes: int
    size_ratio: float


class ImagePreprocessing(BaseModel):
    """How an image model's runtime turns a decoded image into its input tensor (maas.inference.images reads only this).

    Steps, in order: decode (PNG/JPEG, EXIF orientation applied) -> flatten transparency onto ``background``
    -> convert to ``mode`` -> ``fit`` to the target aspect (pad with ``background``, centre-crop, or stretch)
    -> resize to ``width`` x ``height`` with the ``resize`` filter -> to float -> ``invert`` (255 - p) ->
    ``(p * scale - mean[c]) / std[c]`` per channel -> ``layout``.
    """

    model_config = ConfigDict(extra="forbid")

    width: int = Field(ge=1, le=4096)
    height: int = Field(ge=1, le=4096)
    mode: Literal["L", "RGB"]
    fit: Literal["pad", "center-crop", "stretch"] = "pad"
    resize: Literal["box", "bilinear", "bicubic", "lanczos", "nearest"] = "bilinear"
    background: int = Field(255, ge=0, le=255, description="Grey level for padding and transparent pixels.")
    invert: bool = False
    scale: float = 1 / 255
    mean: list[float]
    std: list[float]
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    convention: str = ""  # what the images are expected to look like, in words

    @model_validator(mode="after")
    def _channels(self):
        channels = 1 if self.mode == "L" else 3
        if len(self.mean) != channels or len(self.std) != channels:
            raise ValueError(f"mode {self.mode} needs {channels} mean and std value(s)")
        if any(s <= 0 for s in self.std):
            raise ValueError("std values must be positive")
        return self


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    version: str
    task: Literal["embeddings", "classify", "image-classify", "rerank"]
    runtime_target: Literal["layer", "s3", "sagemaker"] = "layer"
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    dimensions: int | None = None
    max_sequence_length: int | None = None
    pooling: str | None = None
    normalized: bool = False
    labels: list[str] | None = None
    image: ImagePreprocessing | None = None
    quantization: Quantization
    session_config: dict[str, str] = Field(default_factory=dict)
    quality: QualityReport | None = None
    # Task-level evaluation, e.g. a classifier's held-out accuracy (fp32 and int8) with per-class counts.
    evaluation: dict | None = None
    source: dict[str, str] = Field(default_factory=dict)
    files: dict[str, FileEntry]


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_entries(folder: Path, names: list[str]) -> dict[str, FileEntry]:
    """sha256 and size of each named file in ``folder``."""
    return {n: FileEntry(sha256=sha256_file(folder / n), size=(folder / n).stat().st_size) for n in sorted(names)}


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    """Write manifest.json deterministically (sorted keys, fixed indentation)."""
    path = folder / MANIFEST
    path.write_text(json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=True) + "\n")
    return path


def read_manifest(folder: Path) -> Manifest:
    return Manifest.model_validate_json((folder / MANIFEST).read_text())


def publish_package(staged: Path, manifest: Manifest, out_dir: Path) -> None:
    """Write the manifest into the staged folder, then move it to ``out_dir``, replacing what was there."""
    write_manifest(staged, manifest)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(staged), out_dir)


def read_report(folder: Path) -> dict:
    """A package's report.json."""
    return json.loads((Path(folder) / REPORT_FILE).read_text())


class BilledUnder:
    """A package's manifest as billing records it under another task (rerank and v2 bill the embedding package
    under their own task and price family): one copy per (name, version), made once."""

    def __init__(self, task: str):
        self.task = task
        self._copies: dict[tuple[str, str], Manifest] = {}

    def __call__(self, manifest: Manifest) -> Manifest:
        key = (manifest.name, manifest.version)
        if key not in self._copies:
            self._copies[key] = manifest.model_copy(update={"task": self.task})
        return self._copies[key]
