"""Text embedding on ONNX Runtime: one session per container, length-bucketed batches."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maas.package import TOKENIZER_FILE, Manifest


def available_cpus() -> int:
    """CPUs this process may really use: affinity mask, then a cgroup v2 quota if one is set."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cpus = min(cpus, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def make_session(model_path: Path, manifest: Manifest, threads: int | None = None, providers: list[str] | None = None):
    """An InferenceSession with full graph optimisation and the manifest's session config."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or available_cpus()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    for key, value in manifest.session_config.items():
        options.add_session_config_entry(key, value)
    return ort.InferenceSession(str(model_path), options, providers=providers or ["CPUExecutionProvider"])


@dataclass
class Embeddings:
    vectors: np.ndarray  # [n, dims] float32, in input order
    token_counts: list[int]  # tokens the model processed per input, after truncation
    truncated: list[bool]


class TextEmbedder:
    """Tokenize, batch by length, run the session, return vectors in input order.

    Inputs are sorted by token length and cut into batches of at most ``max_batch``; each batch is
    padded only to its own longest input, so a request mixing short and long texts wastes little.
    """

    def __init__(
        self,
        folder: Path,
        manifest: Manifest,
        threads: int | None = None,
        providers: list[str] | None = None,
        max_batch: int = 32,
    ):
        from tokenizers import Tokenizer

        if manifest.task != "embeddings":
            raise ValueError(f"{manifest.name} is a {manifest.task} model, not an embeddings model")
        self.manifest = manifest
        self.max_batch = max_batch
        self.max_length = manifest.max_sequence_length or 512
        self.tokenizer = Tokenizer.from_file(str(Path(folder) / TOKENIZER_FILE))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_length)
        self.session = make_session(Path(folder) / "model.onnx", manifest, threads, providers)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_name = manifest.outputs[0].name
        self.dimensions = manifest.dimensions

    def tokenize(self, texts: list[str]):
        return self.tokenizer.encode_batch(texts, add_special_tokens=True)

    def embed(self, texts: list[str], encodings=None) -> Embeddings:
        encodings = encodings if encodings is not None else self.tokenize(texts)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(lengths, kind="stable")
        out = np.empty((len(encodings), self.dimensions), dtype=np.float32)
        for start in range(0, len(order), self.max_batch):
            idx = order[start : start + self.max_batch]
            width = int(lengths[idx].max())
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                enc = encodings[i]
                ids[row, : lengths[i]] = enc.ids
                mask[row, : lengths[i]] = 1
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            out[idx] = self.session.run([self.output_name], {k: feed[k] for k in self.input_names})[0]
        return Embeddings(out, lengths.tolist(), [bool(e.overflowing) for e in encodings])
