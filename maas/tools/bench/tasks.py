"""`maas bench tasks`: each task function's handler against raw onnxruntime doing the same work by hand.

For every task in TASKS, on the same requests and the same thread count:

- raw: the task written by hand with tokenizers + numpy + ``InferenceSession.run`` + the task's
  post-processing (maas/tools/bench/raw.py; no request parsing, validation, metering or JSON);
- handler: ``functions/<function>/app.py`` invoked in-process with API Gateway REST events, as Lambda
  does on a warm container (metering off, log lines to /dev/null so their formatting is paid).

It reports warm p50/p90 in interleaved rounds and handler/raw, cold start (a fresh process per sample,
spawn to first response) and deployment size (runtime distributions + code + the model packages each one
loads), checks that both answers agree, prints a Markdown table and writes JSON (bench-results/tasks.json).
Nothing asserts a performance number.

Adding a task (e.g. images) is one spec:

1. In maas/tools/bench/raw.py, a class ``RawX(folder, threads, **options)`` whose ``__call__(request)`` does the
   task by hand (for images: decode + resize/normalise as the manifest says, ``session.run``, softmax,
   labels sorted by score) and returns what ``view`` extracts from the handler's JSON body.
2. Here, a ``TaskSpec`` in TASKS::

       TaskSpec(
           name="images",
           function="image_classify",                 # functions/image_classify/app.py
           path="/v1/images/classify",
           models=("digits-cnn",),                    # what the function loads (and deploys)
           raw="RawImageClassifier", raw_model="digits-cnn",
           payloads=image_payloads,                   # models dir -> request bodies, cycled
           view=lambda body: body,                    # the handler's body, comparable with RawX's answer
           env=lambda models: {ENV_MODEL_SOURCE: str(models / "digits-cnn")},
       )

   ``maas bench tasks --task images`` then measures it; the CLI's choices come from TASKS.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from maas.settings.names import (
    DEFAULT_CLASSIFIER,
    DEFAULT_IMAGE_MODEL,
    ENV_CLASSIFIER_SOURCES,
    ENV_METERING,
    ENV_MODEL_SOURCE,
    ENV_THREADS,
)
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
    cold_start,
    fmt,
    handler_child_config,
    handler_deployment,
    interleaved,
    json_event,
    latency_summary,
    machine,
    machine_line,
    markdown_table,
    median,
    now_iso,
    raw_deployment,
    rotated,
    run_settings,
    write_results,
)
from maas.tools.paths import DEFAULT_MODEL

CONTENDERS = ("raw", "handler")
QUICK = {"requests": 20, "rounds": 2, "cold_starts": 1}
DEFAULT_JSON = "bench-results/tasks.json"
VERSIONS = ("onnxruntime", "tokenizers", "numpy", "aws-lambda-powertools", "pydantic")
ZERO_SHOT_LABELS = ("account access", "billing", "shipping", "technical issue", "travel", "cooking")
RERANK_DOCUMENTS = (
    "To reset your password, open Settings, choose Security and follow the link we email you.",
    "Parcels usually arrive within three to five working days; delays are shown on the tracking page.",
    "Our jackets are waterproof up to 10,000 mm and have taped seams.",
    "Refunds reach your card within five days of us receiving the returned item.",
    "Items bought in store can be returned within 30 days with proof of purchase.",
    "If your flight is cancelled you can rebook for free or ask for a full refund.",
    "Battery life improves after the first full charge cycle following an update.",
    "Layer the pasta sheets with spinach, ricotta and tomato sauce, then bake for 40 minutes.",
    "Revenue figures for each quarter are published in the investor relations section.",
    "Meeting rooms can be booked from the calendar app up to four weeks ahead.",
)
RAW_FILE = Path(__file__).with_name("raw.py")  # the baselines; the cold-start child loads this file by path
# Raw's cold-start child: load maas/tools/bench/raw.py by path (no maas import), build the baseline, one request.
RAW_CHILD = """\
import importlib.util
import numpy, onnxruntime, tokenizers
TI = time.perf_counter()
cfg = json.loads(sys.argv[1])
spec = importlib.util.spec_from_file_location("maas_bench_raw", cfg["file"])
raw = importlib.util.module_from_spec(spec)
spec.loader.exec_module(raw)
baseline = getattr(raw, cfg["cls"])(cfg["folder"], cfg["threads"], **cfg["options"])
T1 = time.perf_counter()
answer = baseline(cfg["request"])
T2 = time.perf_counter()
OK = bool(answer)
"""


def embedding_env(models: Path) -> dict[str, str]:
    return {ENV_MODEL_SOURCE: str(models / DEFAULT_MODEL)}


@dataclass(frozen=True)
class TaskSpec:
    """One benchmarked task: the function and route that serve it, and the hand-written baseline."""

    name: str  # the --task value and the table's row
    function: str  # functions/<function>/app.py
    path: str  # the POST route, as API Gateway sends it
    models: tuple[str, ...]  # packages the function loads at init: what it deploys
    raw: str  # the baseline's class in maas/tools/bench/raw.py
    raw_model: str  # the package the baseline loads
    payloads: Callable[[Path], list[dict]]  # the models folder -> request bodies, cycled through
    view: Callable[[dict], object]  # the part of the handler's JSON body the baseline returns
    env: Callable[[Path], dict[str, str]] = embedding_env  # the function's variables (besides threads, metering)
    raw_options: Callable[[], dict] = dict  # extra keyword arguments of the baseline (JSON-serialisable)
    note: str = ""  # what a reader should know about the comparison
    raw_distributions: tuple[str, ...] = RAW_DISTRIBUTIONS  # what the hand-written baseline installs
    extra_layers: tuple[str, ...] = ()  # distributions of the function's layers besides the runtime layer


def _classify_payloads(_: Path) -> list[dict]:
    return [{"inputs": s} for s in SHORT_SENTENCES]


def _zero_shot_payloads(_: Path) -> list[dict]:
    return [{"inputs": s, "parameters": {"candidate_labels": list(ZERO_SHOT_LABELS)}} for s in SHORT_SENTENCES]


def _rerank_payloads(_: Path) -> list[dict]:
    return [{"query": s, "documents": list(RERANK_DOCUMENTS)} for s in SHORT_SENTENCES]


def _v2_payloads(models: Path) -> list[dict]:
    """KServe v2 infer bodies: each sentence's token ids, tokenized here (outside any timer) as a client would."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(models / DEFAULT_MODEL / "tokenizer.json"))
    tokenizer.no_padding()
    bodies = []
    for s in SHORT_SENTENCES:
        ids = tokenizer.encode(s).ids
        shape = [1, len(ids)]
        bodies.append(
            {
                "inputs": [
                    {"name": "input_ids", "datatype": "INT64", "shape": shape, "data": ids},
                    {"name": "attention_mask", "datatype": "INT64", "shape": shape, "data": [1] * len(ids)},
                ]
            }
        )
    return bodies


def _image_payloads(_: Path) -> list[dict]:
    """Held-out-style digits from scikit-learn's bundled set, rendered as 32 px PNGs (dark on light), base64."""
    import base64

    from sklearn.datasets import load_digits

    from maas.tools.build.digits import render

    digits = load_digits()
    return [{"inputs": base64.b64encode(render(digits.images[i], 32)).decode()} for i in range(0, 200, 20)]


def _image_env(models: Path) -> dict[str, str]:
    return {ENV_MODEL_SOURCE: str(models / DEFAULT_IMAGE_MODEL)}


def _zero_shot_options() -> dict:
    from maas.inference.classifiers import DEFAULT_HYPOTHESIS_TEMPLATE, ZERO_SHOT_TEMPERATURE

    return {"temperature": ZERO_SHOT_TEMPERATURE, "template": DEFAULT_HYPOTHESIS_TEMPLATE}


def _classify_env(models: Path) -> dict[str, str]:
    return {**embedding_env(models), ENV_CLASSIFIER_SOURCES: str(models / DEFAULT_CLASSIFIER)}


CLASSIFY = TaskSpec(
    name="classify",
    function="classify",
    path="/v1/classify",
    models=(DEFAULT_MODEL, DEFAULT_CLASSIFIER),
    raw="RawClassifier",
    raw_model=DEFAULT_CLASSIFIER,
    payloads=_classify_payloads,
    view=lambda body: body,
    env=_classify_env,
    note="the classify function loads both packages at init (trained head and zero-shot share it)",
)
TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        CLASSIFY,
        replace(
            CLASSIFY,
            name="classify-zero-shot",
            raw="RawZeroShot",
            raw_model=DEFAULT_MODEL,
            payloads=_zero_shot_payloads,
            # zero-shot answers one string with one flat list (Hugging Face's shape); the raw side gives a list per text
            view=lambda body: [body] if body and isinstance(body[0], dict) else body,
            raw_options=_zero_shot_options,
            note=CLASSIFY.note + "; both sides keep the label hypotheses' vectors across calls",
        ),
        TaskSpec(
            name="rerank",
            function="rerank",
            path="/v1/rerank",
            models=(DEFAULT_MODEL,),
            raw="RawRerank",
            raw_model=DEFAULT_MODEL,
            payloads=_rerank_payloads,
            view=lambda body: body["results"],
            note=f"a query and {len(RERANK_DOCUMENTS)} short documents per request",
        ),
        TaskSpec(
            name="v2",
            function="v2",
            path=f"/v2/models/{DEFAULT_MODEL}/infer",
            models=(DEFAULT_MODEL,),
            raw="RawTensorInfer",
            raw_model=DEFAULT_MODEL,
            payloads=_v2_payloads,
            view=lambda body: [{k: o[k] for k in ("name", "shape", "data")} for o in body["outputs"]],
            note="token ids in the request (KServe v2 JSON tensors); raw starts from the same lists",
        ),
        TaskSpec(
            name="images",
            function="image_classify",
            path="/v1/images/classify",
            models=(DEFAULT_IMAGE_MODEL,),
            raw="RawImageClassifier",
            raw_model=DEFAULT_IMAGE_MODEL,
            payloads=_image_payloads,
            view=lambda body: body,
            env=_image_env,
            note="one 32 px PNG digit per request, base64 in JSON; raw decodes and normalises it by hand",
            raw_distributions=("onnxruntime", "numpy", "pillow"),
            extra_layers=("pillow",),  # layers/images
        ),
    )
}


# ---------------------------------------------------------------- agreement


def compare(a, b) -> tuple[int, float]:
    """(leaves that differ, largest difference between two floats) of two JSON-like values. Strings, ints,
    keys and lengths must be equal (each difference counts once); floats are compared by absolute difference."""
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, int | float) and isinstance(b, int | float):
            return 0, abs(float(a) - float(b))
        return 1, 0.0
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return 1, 0.0
        pairs = [(a[k], b[k]) for k in a]
    elif isinstance(a, list | tuple) and isinstance(b, list | tuple):
        if len(a) != len(b):
            return 1, 0.0
        pairs = list(zip(a, b, strict=True))
    else:
        return (0 if a == b else 1), 0.0
    mismatched, largest = 0, 0.0
    for x, y in pairs:
        m, d = compare(x, y)
        mismatched, largest = mismatched + m, max(largest, d)
    return mismatched, largest


# ---------------------------------------------------------------- one task


def _settings(args) -> dict:
    tasks = list(dict.fromkeys(args.task or TASKS))
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {', '.join(unknown)}; known: {', '.join(TASKS)}")
    return {**run_settings(args, QUICK), "tasks": tasks}


def _function_env(spec: TaskSpec, models: Path, threads: int) -> dict[str, str]:
    return {**spec.env(models), ENV_THREADS: str(threads), ENV_METERING: "off"}


def _raw_config(spec: TaskSpec, models: Path, threads: int) -> dict:
    return {"folder": str(models / spec.raw_model), "threads": threads, "options": spec.raw_options()}


def measure_cold_starts(spec: TaskSpec, request: dict, models: Path, settings: dict, progress) -> dict:
    """Fresh processes, alternating raw and handler: spawn -> first response."""
    threads = settings["threads"]
    env = {**os.environ, **_function_env(spec, models, threads)}
    children = {
        "raw": (
            RAW_CHILD,
            {"file": str(RAW_FILE), "cls": spec.raw, "request": request, **_raw_config(spec, models, threads)},
        ),
        "handler": (HANDLER_CHILD, handler_child_config(spec.function, json_event("POST", spec.path, request))),
    }
    samples: dict[str, list[ColdStart]] = {name: [] for name in CONTENDERS}
    for r in range(settings["cold_starts"]):
        for name in rotated(CONTENDERS, r):
            body, config = children[name]
            sample = cold_start(f"{spec.name} {name}", body, config, env)
            samples[name].append(sample)
            progress(f"{spec.name}: cold start {r + 1}/{settings['cold_starts']}: {name} {sample.wall_s:.2f} s")
    return samples


def bench_task(spec: TaskSpec, settings: dict, handlers: dict, progress: Callable[[str], None]) -> dict:
    """Warm latency, agreement, cold starts and sizes of one task; ``handlers`` caches loaded functions."""
    from maas.tools.bench import raw

    models, threads = paths.MODELS_DIR, settings["threads"]
    payloads = spec.payloads(models)
    baseline = getattr(raw, spec.raw)(models / spec.raw_model, threads, **spec.raw_options())
    key = (spec.function, tuple(sorted(_function_env(spec, models, threads).items())))
    if key not in handlers:
        handlers[key] = InProcessHandler(spec.function, _function_env(spec, models, threads))
    handler = handlers[key]

    def handler_answer(i: int) -> tuple[float, dict]:
        return handler.call(json_event("POST", spec.path, payloads[i % len(payloads)]))  # event built untimed

    def raw_call(i: int) -> float:
        t0 = time.perf_counter()
        baseline(payloads[i % len(payloads)])
        return time.perf_counter() - t0

    calls = {"raw": raw_call, "handler": lambda i: handler_answer(i)[0]}
    for call in calls.values():  # warm-up: sessions, caches, branch predictors
        for i in range(2 * len(payloads)):
            call(i)
    mismatched, largest = 0, 0.0
    for i, payload in enumerate(payloads):
        m, d = compare(spec.view(json.loads(handler_answer(i)[1]["body"])), baseline(payload))
        mismatched, largest = mismatched + m, max(largest, d)
    timings = interleaved(calls, settings["requests"], settings["rounds"], progress, spec.name)
    cold = measure_cold_starts(spec, payloads[0], models, settings, progress)
    sizes = {
        "raw": raw_deployment([models / spec.raw_model], spec.raw_distributions),
        "handler": handler_deployment(spec.function, [models / m for m in spec.models], spec.extra_layers),
    }
    summary = {}
    for name in CONTENDERS:
        lat = latency_summary(timings[name])
        summary[name] = {
            "p50_ms": lat["p50_ms"],
            "p90_ms": lat["p90_ms"],
            "p99_ms": lat["p99_ms"],
            "cold_s": median([c.wall_s for c in cold[name]]),
            "size_bytes": sizes[name].total,
        }
    return {
        "function": spec.function,
        "path": spec.path,
        "models": list(spec.models),
        "raw": {"class": spec.raw, "model": spec.raw_model},
        "note": spec.note,
        "summary": summary,
        "ratios": {
            "p50": summary["handler"]["p50_ms"] / summary["raw"]["p50_ms"],
            "p90": summary["handler"]["p90_ms"] / summary["raw"]["p90_ms"],
            "cold": summary["handler"]["cold_s"] / summary["raw"]["cold_s"],
            "size": summary["handler"]["size_bytes"] / summary["raw"]["size_bytes"],
        },
        "agreement": {"requests": len(payloads), "mismatched_values": mismatched, "max_abs_diff": largest},
        "latency": {
            name: {**latency_summary(t), "samples_ms": [round(1000 * s, 4) for s in t]} for name, t in timings.items()
        },
        "cold_start": {name: [asdict(c) for c in samples] for name, samples in cold.items()},
        "sizes": {name: s.as_json() for name, s in sizes.items()},
    }


# ---------------------------------------------------------------- report

TABLE_HEADER = ["task", "contender", "p50 ms", "p90 ms", "p50 / raw", "cold start s", "cold / raw", "deployment MB"]


def table_rows(tasks: dict[str, dict]) -> list[list[str]]:
    """Two rows per task (raw, handler); the ratio columns are on the handler's row."""
    rows = []
    for name, result in tasks.items():
        s, r = result["summary"], result["ratios"]
        for contender in CONTENDERS:
            c = s[contender]
            ours = contender == "handler"
            rows.append(
                [
                    name if not ours else "",
                    contender,
                    fmt(c.get("p50_ms"), 2),
                    fmt(c.get("p90_ms"), 2),
                    fmt(r["p50"], 2) + "x" if ours else "",
                    fmt(c.get("cold_s"), 2),
                    fmt(r["cold"], 2) + "x" if ours else "",
                    fmt(c["size_bytes"] / MIB, 1),
                ]
            )
    return rows


def report(results: dict) -> str:
    """The printed report: table, agreement, size breakdowns, notes, machine."""
    host, settings = results["machine"], results["settings"]
    lines = [f"## maas bench tasks, {results['date']}", "", markdown_table(TABLE_HEADER, table_rows(results["tasks"]))]
    lines.append("")
    for name, result in results["tasks"].items():
        a = result["agreement"]
        lines.append(
            f"{name}: {result['function']} {result['path']} vs raw {result['raw']['class']}; agreement on "
            f"{a['requests']} requests: {a['mismatched_values']} differing labels/indices, max |score diff| "
            f"{a['max_abs_diff']:.2g}" + (f"; {result['note']}" if result["note"] else "")
        )
    lines.append("")
    deployments = {}  # one line per deployment: tasks served by the same function share one
    for result in results["tasks"].values():
        for contender, size in result["sizes"].items():
            who = f"{result['function']} function" if contender == "handler" else f"raw ({result['raw']['model']})"
            deployments.setdefault(who, size)
    for who, size in deployments.items():
        top = ", ".join(f"{part} {b / MIB:.1f}" for part, b in size["top5"])
        lines.append(f"{who}: {size['total'] / MIB:.1f} MB; largest parts (MB): {top}")
    over = [
        f"{n} {c}"
        for n, r in results["tasks"].items()
        for c, s in r["sizes"].items()
        if s["total"] > LAMBDA_UNZIPPED_LIMIT
    ]
    lines.append(
        "MB = 2^20 bytes; Lambda's 250 MB unzipped limit: "
        + (f"exceeded by {', '.join(over)}" if over else "all within")
    )
    lines.append(
        "warm = handler in-process with API Gateway events (metering off) vs raw by hand, interleaved; cold start = "
        "fresh process, spawn -> first response, median"
    )
    lines.append(machine_line(host, settings["threads"], ("onnxruntime",)))
    quick = " (quick)" if settings["quick"] else ""
    lines.append(
        f"requests {settings['requests']} per contender per task in {settings['rounds']} rounds, cold starts "
        f"{settings['cold_starts']}{quick}; elapsed {results['elapsed_s']:.0f} s"
    )
    return "\n".join(lines)


def missing_packages(specs: list[TaskSpec], models: Path) -> list[str]:
    needed = dict.fromkeys(m for spec in specs for m in (*spec.models, spec.raw_model))
    return [m for m in needed if not (models / m / "manifest.json").is_file()]


def run(args) -> int:
    """Measure every selected task; print the report, write JSON to args.json."""
    from maas.inference.loader import ModelPackageError, verify_package

    progress = Progress()
    try:
        settings = _settings(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    specs = [TASKS[name] for name in settings["tasks"]]
    missing = missing_packages(specs, paths.MODELS_DIR)
    if missing:
        print(
            f"error: model package(s) {', '.join(missing)} not found in {paths.MODELS_DIR}; build them with "
            "maas models build all-minilm-l6-v2 and maas models train-classifier",
            file=sys.stderr,
        )
        return 2
    try:
        for name in dict.fromkeys(m for spec in specs for m in (*spec.models, spec.raw_model)):
            verify_package(paths.MODELS_DIR / name)
    except ModelPackageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    loadavg_start = os.getloadavg()
    handlers: dict = {}
    tasks = {}
    try:
        for spec in specs:
            progress(f"{spec.name}: {spec.function} {spec.path} vs raw {spec.raw}")
            tasks[spec.name] = bench_task(spec, settings, handlers, progress)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    results = {
        "date": now_iso(),
        "settings": settings,
        "machine": machine(loadavg_start, VERSIONS),
        "tasks": tasks,
        "elapsed_s": progress.elapsed_s,
    }
    print(report(results))
    out = write_results(results, args.json)
    progress(f"results written to {out}")
    return 0
