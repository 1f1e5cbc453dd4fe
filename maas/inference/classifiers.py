"""Text classification on ONNX Runtime: a trained classifier package, and zero-shot on the embedding model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from maas.inference.embedder import Embeddings, TextEmbedder
from maas.inference.package import Manifest

# Zero-shot scores are softmax(cosine(text, hypothesis) / ZERO_SHOT_TEMPERATURE) over the candidate labels.
# MiniLM's cosines between a text and short hypotheses mostly fall within 0.0-0.7, with a clear winner
# 0.1-0.3 ahead; cosines themselves are too close together to read as probabilities. At 0.05 a lead of
# 0.1 in cosine is e^2 = 7.4x the probability; a lead of 0.01 only 1.2x, so near-ties stay near-ties.
ZERO_SHOT_TEMPERATURE = 0.05
DEFAULT_HYPOTHESIS_TEMPLATE = "This text is about {}."
# multi_label (Hugging Face: each label scored on its own, the scores need not sum to 1): sigmoid((cosine -
# MULTI_LABEL_CENTER) / ZERO_SHOT_TEMPERATURE), so a label's score depends on its cosine alone; 0.3 is where
# MiniLM's cosines for a related hypothesis begin (unrelated ones mostly stay under 0.2).
MULTI_LABEL_CENTER = 0.3


class TextClassifier(TextEmbedder):
    """A classify package: tokenize, length-bucket, run; the graph's output is the class probabilities.

    The batching and tokenization are the embedder's; only the output differs (one probability per label).
    """

    def __init__(self, folder: Path, manifest: Manifest, **kwargs):
        if manifest.task != "classify" or not manifest.labels:
            raise ValueError(f"{manifest.name} is a {manifest.task} model without labels, not a classifier")
        # The embedder refuses other tasks and sizes its output by `dimensions`: give it the label count.
        super().__init__(
            folder, manifest.model_copy(update={"task": "embeddings", "dimensions": len(manifest.labels)}), **kwargs
        )
        self.manifest = manifest
        self.labels = list(manifest.labels)

    def classify(self, texts: list[str], encodings=None) -> Embeddings:
        """Probabilities [n, labels] in input order (in ``.vectors``), with token counts."""
        return self.embed(texts, encodings)


def zero_shot_scores(text_vectors: np.ndarray, hypothesis_vectors: np.ndarray, multi_label: bool = False) -> np.ndarray:
    """[texts, labels] probabilities from L2-normalised embeddings: softmax of cosine / temperature over the labels,
    or with ``multi_label`` an independent sigmoid per label (see MULTI_LABEL_CENTER)."""
    if multi_label:
        z = (text_vectors @ hypothesis_vectors.T - MULTI_LABEL_CENTER) / ZERO_SHOT_TEMPERATURE
        return 1.0 / (1.0 + np.exp(-z))
    logits = text_vectors @ hypothesis_vectors.T / ZERO_SHOT_TEMPERATURE
    logits -= logits.max(1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(1, keepdims=True)


def ranked(labels: list[str], probabilities: np.ndarray, top_k: int | None) -> list[list[dict]]:
    """Per input, [{label, score}] sorted by score (ties by label order), at most ``top_k`` each."""
    k = len(labels) if top_k is None else min(top_k, len(labels))
    out = []
    for row in probabilities:
        order = np.argsort(-row, kind="stable")[:k]
        out.append([{"label": labels[i], "score": round(float(row[i]), 6)} for i in order])
    return out
