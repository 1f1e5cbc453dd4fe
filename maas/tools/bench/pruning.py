"""`maas bench pruning`: structured pruning of MiniLM's FFN neurons, measured against the fast tier.

Importance of FFN neuron j in layer l, on the ticket-intents training texts (shipped data, not the eval set):
mean over real tokens of |GELU output_j| times the L2 norm of its row in the output projection (the size of
what the neuron adds to the residual stream). Each layer keeps the same number of its most important neurons
(one `intermediate_size` for the config), no fine-tuning afterwards. Every pruned model is exported, fused and
stored as the exact tier is (weight-only int8), then measured beside the fast tier on the same inputs and
threads: min/mean cosine to the unpruned fp32 graph on the eval set, single-sentence p50, batch-32 throughput.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from maas.tools import paths
from maas.tools.bench.common import (
    Progress,
    fmt,
    interleaved,
    latency_summary,
    markdown_table,
    now_iso,
    rotated,
    single_sentence_call,
    write_results,
)

KEEP = (1.0, 0.75, 0.5, 0.25)
BATCH = 32


def importance(bert, texts: list[str], tokenizer) -> list[np.ndarray]:
    """Per layer: mean |GELU(x W_in)| over real tokens, times ||W_out column||, one value per FFN neuron."""
    import torch

    sums = [torch.zeros(layer.intermediate.dense.out_features) for layer in bert.encoder.layer]
    count = 0
    hooks = []
    mask_holder = {}

    def hook(i):
        def record(module, args, output):
            m = mask_holder["mask"].unsqueeze(-1).to(output.dtype)
            sums[i] += (output.abs() * m).sum(dim=(0, 1)).detach()

        return record

    for i, layer in enumerate(bert.encoder.layer):
        hooks.append(layer.intermediate.register_forward_hook(hook(i)))
    with torch.no_grad():
        for start in range(0, len(texts), 32):
            chunk = texts[start : start + 32]
            enc = tokenizer(chunk, padding=True, truncation=True, max_length=256, return_tensors="pt")
            mask_holder["mask"] = enc["attention_mask"]
            bert(**enc)
            count += int(enc["attention_mask"].sum())
    for h in hooks:
        h.remove()
    out = []
    for i, layer in enumerate(bert.encoder.layer):
        w_out = layer.output.dense.weight.detach()  # [hidden, intermediate]
        out.append((sums[i] / count * w_out.norm(dim=0)).numpy())
    return out


def prune(bert, scores: list[np.ndarray], keep: float) -> None:
    """Keep the ``keep`` fraction of each layer's FFN neurons with the highest score (in place)."""
    import torch

    n = int(round(bert.config.intermediate_size * keep))
    for layer, score in zip(bert.encoder.layer, scores, strict=True):
        idx = torch.tensor(np.sort(np.argsort(-score)[:n]))
        dense_in, dense_out = layer.intermediate.dense, layer.output.dense
        new_in = torch.nn.Linear(dense_in.in_features, n)
        new_in.weight.data = dense_in.weight.data[idx].clone()
        new_in.bias.data = dense_in.bias.data[idx].clone()
        new_out = torch.nn.Linear(n, dense_out.out_features)
        new_out.weight.data = dense_out.weight.data[:, idx].clone()
        new_out.bias.data = dense_out.bias.data.clone()
        layer.intermediate.dense, layer.output.dense = new_in, new_out
    bert.config.intermediate_size = n


def run(args) -> int:
    """Build each pruned variant, measure it beside the fast tier, print the curve and write JSON."""
    from transformers import AutoTokenizer, BertModel

    from maas.tools.bench.tiers import OnnxContender
    from maas.tools.build.fast import calibration_texts
    from maas.tools.build.minilm import cosine_report, eval_sentences, export_fp32, optimize, weights_dir
    from maas.tools.build.quantize import quantize_weights_int8

    progress = Progress()
    fast = paths.model_dir("all-minilm-l6-v2-fast")
    if not (fast / "manifest.json").is_file():
        print("error: build the fast tier first: maas models build all-minilm-l6-v2-fast", file=sys.stderr)
        return 2
    src = weights_dir()
    sentences, _ = eval_sentences()
    tokenizer_json = paths.model_dir("all-minilm-l6-v2") / "tokenizer.json"
    work = Path(tempfile.mkdtemp(prefix="maas-bench-pruning-"))
    threads = args.threads or 2
    try:
        hf_tok = AutoTokenizer.from_pretrained(str(src))
        bert = BertModel.from_pretrained(str(src), attn_implementation="eager").eval()
        progress("measuring FFN neuron importance on the ticket-intents training texts")
        scores = importance(bert, calibration_texts(), hf_tok)
        export_fp32(src, work / "reference.onnx")
        reference = OnnxContender("fp32", "", work / "reference.onnx", tokenizer_json, threads)
        ref_vectors = np.concatenate([reference.vectors(sentences[i : i + 16]) for i in range(0, len(sentences), 16)])
        contenders = {"fast tier": OnnxContender("fast", "", fast / "model.onnx", fast / "tokenizer.json", threads)}
        for keep in KEEP:
            folder = work / f"keep{keep}"
            model = BertModel.from_pretrained(str(src), attn_implementation="eager").eval()
            prune(model, scores, keep)
            model.save_pretrained(str(folder))
            export_fp32(folder, folder / "fp32.onnx")
            optimize(folder / "fp32.onnx", folder / "fused.onnx")
            quantize_weights_int8(folder / "fused.onnx", folder / "model.onnx")
            label = f"FFN kept {int(keep * 100)}%"
            contenders[label] = OnnxContender(label, "", folder / "model.onnx", tokenizer_json, threads)
            progress(f"{label}: built")
        quality = {}
        for name, c in contenders.items():
            vectors = np.concatenate([c.vectors(sentences[i : i + 16]) for i in range(0, len(sentences), 16)])
            quality[name] = cosine_report(vectors, ref_vectors)

        batch = sentences[:: len(sentences) // BATCH][:BATCH]
        single = interleaved({n: single_sentence_call(c) for n, c in contenders.items()}, args.requests, 5, progress)
        batches: dict[str, list[float]] = {n: [] for n in contenders}
        for r in range(args.batches):
            for name in rotated(list(contenders), r):
                t0 = time.perf_counter()
                contenders[name].vectors(batch)
                batches[name].append(time.perf_counter() - t0)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = {
        name: {
            **quality[name],
            "p50_ms": latency_summary(single[name])["p50_ms"],
            "batch_sps": BATCH * len(batches[name]) / sum(batches[name]),
        }
        for name in contenders
    }
    rows = [
        [n, fmt(s["min_cosine"], 4), fmt(s["mean_cosine"], 4), fmt(s["p50_ms"], 2), fmt(s["batch_sps"], 1)]
        for n, s in summary.items()
    ]
    print(f"## maas bench pruning, {now_iso()}, {threads} threads\n")
    print(markdown_table(["model", "min cosine", "mean cosine", "p50 ms", "batch-32 sentences/s"], rows))
    out = write_results({"date": now_iso(), "threads": threads, "summary": summary}, args.json)
    progress(f"results written to {out}")
    return 0
