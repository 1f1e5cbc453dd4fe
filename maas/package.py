"""The model package contract: a folder with model.onnx, tokenizer.json (text models) and manifest.json.

The manifest records every file's sha256 and size; nothing loads a model without checking them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MANIFEST = "manifest.json"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
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
    image: dict | None = None
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
