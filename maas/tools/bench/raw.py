"""Raw onnxruntime baselines for `maas bench tasks`: each task's work written by hand, the way a user would
without maas: tokenizers + numpy + ``InferenceSession.run`` + the task's post-processing, nothing else.

No request parsing, validation, metering or JSON: a baseline takes the request already parsed (the same dict
the handler receives as JSON) and returns the part of the response the handler's answer is compared with.

This module imports no maas code on purpose: the cold-start child loads this file by path, so a raw cold
start pays for numpy, onnxruntime and tokenizers only. Each baseline is a class ``Name(folder, threads,
**options)`` with ``__call__(request) -> comparable``; maas.tools.bench.tasks names the class in a task's spec.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _session(folder: Path, threads: int, manifest: dict):
    """An InferenceSession as a user sets one up by hand: full graph optimisation, the manifest's session
    config, the given thread count, CPU."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    for key, value in (manifest.get("session_config") or {}).items():
        options.add_session_config_entry(key, value)
    return ort.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])


class RawText:
    """A model package's session and tokenizer as a user sets them up by hand: full graph optimisation, the
    manifest's session config, the same thread count, padding to the longest input of a batch."""

    def __init__(self, folder: str | Path, threads: int):
        from tokenizers import Tokenizer

        folder = Path(folder)
        self.manifest = json.loads((folder / "manifest.json").read_text())
        self.session = _session(folder, threads, self.manifest)
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.manifest.get("max_sequence_length") or 512)
        self.tokenizer.enable_padding(pad_id=0)  # to the longest input (the packaged file pads to 128)
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.output = self.manifest["outputs"][0]["name"]

    def run(self, texts: list[str]) -> np.ndarray:
        """The graph's first output for ``texts`` (one padded batch)."""
        encodings = self.tokenizer.encode_batch(texts) if len(texts) > 1 else [self.tokenizer.encode(texts[0])]
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return self.session.run([self.output], {k: v for k, v in feed.items() if k in self.input_names})[0]


def _ranked(labels: list[str], probabilities: np.ndarray) -> list[list[dict]]:
    out = []
    for row in probabilities:
        order = np.argsort(-row, kind="stable")
        out.append([{"label": labels[i], "score": round(float(row[i]), 6)} for i in order])
    return out


def _texts(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


class RawClassifier(RawText):
    """A trained classifier package (the graph ends in softmax): probabilities -> labels sorted by score."""

    def __call__(self, request: dict) -> list[list[dict]]:
        return _ranked(self.manifest["labels"], self.run(_texts(request["inputs"])))


class RawZeroShot(RawText):
    """Zero-shot on an embedding package: embed the text, embed each label's hypothesis (kept across calls,
    as anyone calling with the same labels would), softmax of cosine / temperature, labels sorted by score."""

    def __init__(self, folder, threads: int, temperature: float, template: str):
        super().__init__(folder, threads)
        self.temperature, self.template = temperature, template
        self.hypotheses: dict[str, np.ndarray] = {}

    def __call__(self, request: dict) -> list[list[dict]]:
        labels = request["parameters"]["candidate_labels"]
        hypotheses = [self.template.replace("{}", label, 1) for label in labels]
        missing = [h for h in hypotheses if h not in self.hypotheses]
        if missing:
            self.hypotheses.update(zip(missing, self.run(missing), strict=True))
        text_vectors = self.run(_texts(request["inputs"]))  # the package normalises inside its graph
        logits = text_vectors @ np.stack([self.hypotheses[h] for h in hypotheses]).T / self.temperature
        p = np.exp(logits - logits.max(1, keepdims=True))
        return _ranked(labels, p / p.sum(1, keepdims=True))


class RawRerank(RawText):
    """Rerank on an embedding package: query and documents in one batch, cosine, sorted by score."""

    def __call__(self, request: dict) -> list[dict]:
        vectors = self.run([request["query"], *request["documents"]])
        scores = vectors[1:] @ vectors[0]
        order = np.argsort(-scores, kind="stable")[: request.get("top_n")]
        return [{"index": int(i), "relevance_score": round(float(scores[i]), 6)} for i in order]


class RawTensorInfer(RawText):
    """KServe v2 infer by hand: the request's tensors as numpy arrays, session.run, outputs as flat lists."""

    def __call__(self, request: dict) -> list[dict]:
        feed = {
            t["name"]: np.asarray(t["data"], dtype=np.int64).reshape(t["shape"])
            for t in request["inputs"]
            if t["name"] in self.input_names
        }
        if "token_type_ids" in self.input_names and "token_type_ids" not in feed:
            feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
        outputs = self.session.run(None, feed)
        return [
            {"name": spec.name, "shape": list(value.shape), "data": value.reshape(-1).tolist()}
            for spec, value in zip(self.session.get_outputs(), outputs, strict=True)
        ]


class RawImageClassifier:
    """Image classification by hand: base64 -> Pillow decode -> greyscale -> box-resize to the model's size ->
    invert, scale, standardise (the numbers read from the manifest) -> session.run -> labels by score."""

    def __init__(self, folder: str | Path, threads: int):
        folder = Path(folder)
        self.manifest = json.loads((folder / "manifest.json").read_text())
        self.session = _session(folder, threads, self.manifest)
        self.input = self.session.get_inputs()[0].name
        self.spec, self.labels = self.manifest["image"], self.manifest["labels"]

    def __call__(self, request: dict) -> list[dict]:
        import base64
        import io

        from PIL import Image

        spec = self.spec
        image = Image.open(io.BytesIO(base64.b64decode(request["inputs"]))).convert("L")
        image = image.resize((spec["width"], spec["height"]), Image.Resampling.BOX)
        pixels = 255.0 - np.asarray(image, dtype=np.float32) if spec["invert"] else np.asarray(image, np.float32)
        pixels = (pixels * spec["scale"] - spec["mean"][0]) / spec["std"][0]
        probabilities = self.session.run(None, {self.input: pixels[None, None].astype(np.float32)})[0]
        top_k = (request.get("parameters") or {}).get("top_k", 5)
        return _ranked(self.labels, probabilities)[0][:top_k]
