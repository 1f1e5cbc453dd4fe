"""Text embedding on ONNX Runtime: one session per container, length-bucketed batches."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maas.inference.package import TOKENIZER_FILE, Manifest
from maas.inference.sessions import make_session


def encode_vectors(vectors: np.ndarray, encoding_format: str) -> list:
    """Vectors as the API sends them: `base64` (little-endian float32 bytes) or `float` JSON numbers.

    Rounding to 9 decimals keeps every float32 digit that matters (|error| <= 5e-10) and makes JSON
    encoding ~1.5x faster than printing the 17-digit doubles float32 values widen to.
    """
    if encoding_format == "base64":
        le = vectors.astype("<f4", copy=False)
        return [base64.b64encode(row.tobytes()).decode("ascii") for row in le]
    return np.round(vectors.astype(np.float64), 9).tolist()


def sized(settings) -> dict:
    """A TextEmbedder's threads and batch limits from a function's settings (MAAS_THREADS, MAAS_BATCH_SIZE,
    MAAS_BATCH_TOKENS): ``TextEmbedder(folder, manifest, **sized(settings))``."""
    return {"threads": settings.threads, "max_batch": settings.batch_size, "max_batch_tokens": settings.batch_tokens}


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
        max_batch_tokens: int = 256,
    ):
        from tokenizers import Tokenizer

        if manifest.task != "embeddings":
            raise ValueError(f"{manifest.name} is a {manifest.task} model, not an embeddings model")
        self.manifest = manifest
        self.max_batch = max_batch
        self.max_batch_tokens = max_batch_tokens
        self.max_length = manifest.max_sequence_length or 512
        self.tokenizer = Tokenizer.from_file(str(Path(folder) / TOKENIZER_FILE))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_length)
        self.session = make_session(Path(folder) / "model.onnx", manifest, threads, providers)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_name = manifest.outputs[0].name
        self.dimensions = manifest.dimensions
        # what an explanation puts in place of a masked word (BERT's [MASK]; RoBERTa's <mask>); None: no mask token
        self.mask_id = next((i for i in map(self.tokenizer.token_to_id, ("[MASK]", "<mask>")) if i is not None), None)

    def tokenize(self, texts: list[str]):
        if len(texts) == 1:  # encode_batch's thread hand-off costs ~60 us, a fifth of our per-call overhead
            return [self.tokenizer.encode(texts[0], add_special_tokens=True)]
        return self.tokenizer.encode_batch(texts, add_special_tokens=True)

    def batches(self, lengths: np.ndarray) -> list[np.ndarray]:
        """Index groups to run together: sorted by length, at most ``max_batch`` inputs and at most
        ``max_batch_tokens`` padded tokens each (attention cost grows with the square of the width,
        so one long text must not drag 31 short ones to its width)."""
        order = np.argsort(lengths, kind="stable")
        groups, start = [], 0
        for end in range(1, len(order) + 1):
            width = int(lengths[order[end - 1]])
            if end - start > self.max_batch or (end - start) * width > max(self.max_batch_tokens, width):
                groups.append(order[start : end - 1])
                start = end - 1
        groups.append(order[start:])
        return [g for g in groups if len(g)]

    def run_rows(self, groups: list[np.ndarray], max_tokens: int = 32768) -> tuple[list[np.ndarray], int]:
        """The graph's outputs for groups of token-id rows, the rows of a group all of one length (an explanation's
        masked copies of one input): every group packed into as few session.run calls as ``max_tokens`` padded
        tokens per call allow (the activations of 32,768 tokens take about 50 MB), shorter groups first, each
        padded only to its call's widest. Returns one output array per group, and the number of calls."""
        outs = [np.empty((len(g), self.dimensions), dtype=np.float32) for g in groups]
        pending: list[tuple[int, int, int]] = []  # (group, first row, end row) of the next call
        calls = 0

        def flush(width: int) -> None:
            rows = sum(end - start for _, start, end in pending)
            ids = np.zeros((rows, width), dtype=np.int64)
            mask = np.zeros((rows, width), dtype=np.int64)
            at = 0
            for g, start, end in pending:
                n, w = end - start, groups[g].shape[1]
                ids[at : at + n, :w], mask[at : at + n, :w] = groups[g][start:end], 1
                at += n
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            out = self.session.run([self.output_name], {k: feed[k] for k in self.input_names})[0]
            at = 0
            for g, start, end in pending:
                outs[g][start:end] = out[at : at + end - start]
                at += end - start

        width = rows = 0
        for g in sorted(range(len(groups)), key=lambda g: groups[g].shape[1]):
            start, size, w = 0, len(groups[g]), groups[g].shape[1]
            while start < size:
                room = max_tokens // max(width, w) - rows
                if room <= 0 and pending:
                    flush(width)
                    calls, pending, width, rows = calls + 1, [], 0, 0
                    continue
                end = min(size, start + max(room, 1))
                pending.append((g, start, end))
                rows, width, start = rows + end - start, max(width, w), end
        if pending:
            flush(width)
            calls += 1
        return outs, calls

    def embed(self, texts: list[str], encodings=None) -> Embeddings:
        encodings = encodings if encodings is not None else self.tokenize(texts)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        out = np.empty((len(encodings), self.dimensions), dtype=np.float32)
        groups = [np.arange(1)] if len(encodings) == 1 else self.batches(lengths)
        for idx in groups:
            width = int(lengths[idx].max())
            if len(idx) == 1:
                ids = np.array([encodings[idx[0]].ids], dtype=np.int64)
                mask = np.ones_like(ids)
            else:
                ids = np.zeros((len(idx), width), dtype=np.int64)
                mask = np.zeros((len(idx), width), dtype=np.int64)
                for row, i in enumerate(idx):
                    ids[row, : lengths[i]] = encodings[i].ids
                    mask[row, : lengths[i]] = 1
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            out[idx] = self.session.run([self.output_name], {k: feed[k] for k in self.input_names})[0]
        return Embeddings(out, lengths.tolist(), [bool(e.overflowing) for e in encodings])
