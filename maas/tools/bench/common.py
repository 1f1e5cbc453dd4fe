"""What every `maas bench` suite shares: statistics, interleaved timing, cold starts in fresh processes,
deployment sizes, a handler invoked in-process, the printed table and the JSON results.

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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from maas.tools import paths

# The Lambda Python runtime ships these; a deployment does not carry them.
AWS_PROVIDED = frozenset({"boto3", "botocore"})
# What a hand-written onnxruntime deployment installs: the floor every handler is compared with.
RAW_DISTRIBUTIONS = ("onnxruntime", "tokenizers", "numpy")
MIB = 1 << 20
LAMBDA_UNZIPPED_LIMIT = 250 * MIB
RESULT_MARK = "MAAS_BENCH_RESULT "
REWARM_S = 0.2
RESULTS_DIR = "bench-results"
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


class BenchError(Exception):
    """A contender failed (bad response, crashed child process); the benchmark cannot report it."""


# Imports beyond the standard library's lightest are made where they are used: `maas --help` builds this
# suite's parser from maas.tools.bench.tasks, which imports this module.

# ---------------------------------------------------------------- statistics and interleaving


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


def median(values) -> float:
    return percentile(values, 50)


def latency_summary(seconds: list[float]) -> dict:
    """p50/p90/p99/mean/min in milliseconds of a list of durations in seconds."""
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
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


# A timed call: given the request's index, run one request and return its duration in seconds.
TimedCall = Callable[[int], float]


def rewarm(call: TimedCall, seconds: float = REWARM_S) -> None:
    """Untimed calls for ``seconds`` (at least one) after switching contenders.

    In one process the contender that ran before leaves its thread pool spinning or its threads asleep;
    on 2 cores the next contender's first ~10 calls (~40 ms) then run up to 3x slower. Lambda runs one
    model per process, so that penalty belongs to the benchmark, not to any contender.
    """
    deadline = time.perf_counter() + seconds
    k = 0
    while k == 0 or time.perf_counter() < deadline:
        call(k)
        k += 1


def interleaved(
    calls: dict[str, TimedCall], requests: int, rounds: int, progress: Callable[[str], None], label: str = "requests"
) -> dict[str, list[float]]:
    """``requests`` timed calls per contender in ``rounds`` interleaved blocks, each block after a re-warm, in
    rotating order; every contender sees the same request indices. The machines are shared and noisy, so
    drift hits every contender alike."""
    timings: dict[str, list[float]] = {name: [] for name in calls}
    done = 0
    blocks = split_evenly(requests, rounds)
    for r, size in enumerate(blocks):
        for name in rotated(list(calls), r):
            rewarm(calls[name])
            timings[name].extend(calls[name](done + i) for i in range(size))
        done += size
        progress(f"{label}: round {r + 1}/{len(blocks)} done ({done}/{requests} per contender)")
    return timings


# ---------------------------------------------------------------- deployment sizes


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

    def with_parts(self, extra: dict[str, int]) -> SizeReport:
        """A copy with ``extra`` parts added (code, model packages)."""
        return SizeReport(parts={**self.parts, **extra}, missing=list(self.missing))

    def as_json(self) -> dict:
        return {"total": self.total, "top5": self.top(5), "parts": self.parts, "missing": self.missing}


def installed_size(roots, exclude=AWS_PROVIDED, recursive: bool = True) -> SizeReport:
    """Installed bytes of ``roots`` and (if ``recursive``) everything they require, each file counted once."""
    from maas.tools.layer_rules import dependency_closure, distribution_files

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

    from maas.tools.layer_rules import normalize_name

    project = tomllib.loads(Path(pyproject).read_text())["project"]
    return [normalize_name(Requirement(spec).name) for spec in project["dependencies"]]


@cache
def runtime_layer_size(extra: tuple[str, ...] = ()) -> SizeReport:
    """The runtime layer as maas.tools.layer_rules builds it (unused dependencies and files left out, libraries
    stripped), plus the distributions of ``extra`` layers (the image function's Pillow), materialized from this
    interpreter's wheels and measured on disk; once per process."""
    from maas.tools.layer_rules import materialize_runtime

    report = SizeReport()
    with tempfile.TemporaryDirectory(prefix="maas-layer-") as tmp:
        roots = runtime_requirements(paths.REPO_ROOT / "pyproject.toml") + list(extra)
        layer = materialize_runtime(roots, Path(tmp))
        for path in layer.rglob("*"):
            if path.is_file():
                top = path.relative_to(layer).parts[0].removesuffix(".libs")
                report.parts[top] = report.parts.get(top, 0) + path.stat().st_size
    return report


def handler_deployment(function: str, model_folders: Iterable[Path], extra: tuple[str, ...] = ()) -> SizeReport:
    """What one of our functions puts into Lambda: the runtime layer (and the ``extra`` layers' distributions),
    the shared package and its app.py folder, and every model package it loads."""
    code = folder_size(paths.REPO_ROOT / "maas", (".py",)) + folder_size(paths.FUNCTIONS_DIR / function)
    models = {f"model {Path(f).name}": folder_size(f) for f in model_folders}
    return runtime_layer_size(tuple(extra)).with_parts({"maas code": code, **models})


def raw_deployment(model_folders: Iterable[Path], distributions: tuple[str, ...] = RAW_DISTRIBUTIONS) -> SizeReport:
    """What a hand-written onnxruntime function puts into Lambda: its libraries as pip installs them (by
    default onnxruntime, tokenizers, numpy), and the model packages it loads."""
    return installed_size(distributions).with_parts({f"model {Path(f).name}": folder_size(f) for f in model_folders})


# ---------------------------------------------------------------- a handler in-process, as a warm Lambda container


class InProcessHandler:
    """functions/<name>/app.py loaded in this process with its environment; ``call`` times one invocation."""

    def __init__(self, function: str, env: dict[str, str]):
        from maas.tools.local.functions import LambdaContext, load_handler

        self.function = function
        self._context_type = LambdaContext
        # Powertools binds its log stream to sys.stdout when the Logger is created; keep the lines out of
        # the report but still pay for formatting and writing them, as a deployed function does.
        self._sink = open(os.devnull, "w")  # lives as long as the handler
        with contextlib.redirect_stdout(self._sink):
            self.handler = load_handler(function, env)

    def call_any(self, event: dict) -> dict:
        """The proxy result of one invocation, whatever its status."""
        return self.call(event, expect_ok=False)[1]

    def call(self, event: dict, expect_ok: bool = True) -> tuple[float, dict]:
        """(seconds, proxy result) of one invocation; anything but a 200 is a BenchError (unless not ``expect_ok``)."""
        context = self._context_type(function_name=f"maas-{self.function}")
        with contextlib.redirect_stdout(self._sink):  # EMF metric lines, as a deployed function prints them
            t0 = time.perf_counter()
            result = self.handler(event, context)
            elapsed = time.perf_counter() - t0
        if expect_ok and result.get("statusCode") != 200:
            raise BenchError(f"{self.function} answered {result.get('statusCode')}: {str(result.get('body'))[:300]}")
        return elapsed, result


def json_event(method: str, path: str, payload, authorizer: dict | None = None) -> dict:
    """The API Gateway REST event for a JSON request (built outside any timer)."""
    from maas.tools.local.apigw import make_event

    return make_event(
        method,
        path,
        headers={"Content-Type": "application/json"},
        body=json.dumps(payload).encode(),
        authorizer=authorizer,
    )


# ---------------------------------------------------------------- cold starts: one fresh interpreter per sample

# A child's code is CHILD_HEAD + a body + CHILD_TAIL. The body reads its config from sys.argv[1] (JSON) and
# sets TI (imports done), T1 (ready: model loaded), T2 (first response) and OK (the response is right).
CHILD_HEAD = "import time\nT0 = time.perf_counter()\nW0 = time.time()\nimport json, sys\n"
CHILD_TAIL = (
    "print(" + repr(RESULT_MARK) + " + json.dumps({'wall_start': W0, 'import_s': TI - T0, 'init_s': T1 - T0,"
    " 'first_call_s': T2 - T1, 'child_s': T2 - T0, 'ok': bool(OK)}), flush=True)\n"
)
# Our function: import app.py as the Lambda runtime does (that loads the models), then one event.
HANDLER_CHILD = """\
import importlib.util, types
cfg = json.loads(sys.argv[1])
spec = importlib.util.spec_from_file_location("app", cfg["app"])
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)
TI = T1 = time.perf_counter()
context = types.SimpleNamespace(function_name="maas-bench", memory_limit_in_mb=1024,
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:maas-bench", aws_request_id="cold")
result = app.lambda_handler(cfg["event"], context)
T2 = time.perf_counter()
OK = result.get("statusCode") == 200
"""


def handler_child_config(function: str, event: dict) -> dict:
    return {"app": str(paths.FUNCTIONS_DIR / function / "app.py"), "event": event}


@dataclass
class ColdStart:
    wall_s: float  # parent: spawn -> first response printed (what a caller of a cold function waits)
    exit_s: float  # parent: spawn -> process exited
    interpreter_s: float  # spawn -> the child's first line ran (interpreter and site start-up)
    import_s: float  # child: imports only (for a handler, importing app.py also loads the model)
    init_s: float  # child: imports + model load
    first_call_s: float  # child: the first request
    child_s: float  # child: init + first call


def cold_start(label: str, body: str, config: dict, env: dict[str, str], timeout_s: float = 300.0) -> ColdStart:
    """Run ``body`` (see CHILD_HEAD) in a fresh interpreter and time imports + load + first response."""
    code = CHILD_HEAD + body + CHILD_TAIL
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
        for line in proc.stdout:  # a handler's own log lines come first
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
            raise BenchError(f"{label} cold start failed (exit {proc.returncode}): {tail or 'no output'}")
    return ColdStart(
        wall_s=answered - t0,
        exit_s=exited - t0,
        interpreter_s=result["wall_start"] - spawned_wall,
        import_s=result["import_s"],
        init_s=result["init_s"],
        first_call_s=result["first_call_s"],
        child_s=result["child_s"],
    )


# ---------------------------------------------------------------- reporting


class Progress:
    """Timestamped progress lines on stderr (the report goes to stdout)."""

    def __init__(self):
        self.t0 = time.perf_counter()

    def __call__(self, message: str) -> None:
        print(f"[{time.perf_counter() - self.t0:6.1f}s] {message}", file=sys.stderr, flush=True)

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.t0


def fmt(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


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


def versions(names: Iterable[str]) -> dict[str, str | None]:
    from importlib import metadata

    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def machine(loadavg_start: tuple[float, ...], distributions: Iterable[str]) -> dict:
    """The machine and library versions a run was measured on."""
    return {
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions(distributions),
        "loadavg_start": [round(x, 2) for x in loadavg_start],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
    }


def machine_line(host: dict, threads: int, libraries: Iterable[str]) -> str:
    """One line of the printed report: threads, CPU, the named libraries' versions, Python, load."""
    libs = " | ".join(f"{name} {host['versions'].get(name)}" for name in libraries)
    return (
        f"threads {threads} (of {host['cpus']} CPUs) | CPU {host['cpu_model']} | {libs} | Python {host['python']} | "
        f"load avg {host['loadavg_start']} -> {host['loadavg_end']}"
    )


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_results(results: dict, path: str | Path) -> Path:
    """The run's results as indented JSON (the folder is created)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    return out


def run_settings(args, quick_caps: dict[str, int]) -> dict:
    """The repetition counts named in ``quick_caps`` (read from ``args``; capped by it under --quick, each at
    least 1), the thread count for every contender (as requested, or the CPUs this process may use) and quick."""
    from maas.inference.sessions import available_cpus

    counts = {key: getattr(args, key) for key in quick_caps}
    if args.quick:
        counts = {k: min(v, quick_caps[k]) for k, v in counts.items()}
    for key, value in counts.items():
        if value < 1:
            raise ValueError(f"--{key.replace('_', '-')} must be at least 1, got {value}")
    threads = args.threads or available_cpus()
    if threads < 1:
        raise ValueError(f"--threads must be at least 1, got {threads}")
    return {**counts, "threads": threads, "quick": bool(args.quick)}


def single_sentence_call(contender):
    """``call(i)`` for interleaved(): one short sentence through ``contender.vectors``, timed in seconds."""

    def call(i: int) -> float:
        t0 = time.perf_counter()
        contender.vectors([SHORT_SENTENCES[i % len(SHORT_SENTENCES)]])
        return time.perf_counter() - t0

    return call
