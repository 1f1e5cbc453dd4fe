"""What the deployment costs at idle and per million calls, from the configuration and the benchmark.

    python -m infra.cost [--json] [--bench bench-results/embeddings.json] [--config infra/config.json]

Prices are us-east-1 list prices (on-demand, no free tier) as recorded below; check the pricing pages before
relying on them. Durations come from the benchmark's JSON (handler p50) when it exists, otherwise a clearly
labelled placeholder. The benchmark ran on a developer machine, not in Lambda: Lambda gives a function a CPU
share proportional to memory (1,769 MB = one vCPU), so the table also shows the duration scaled by that share.
Every per-call charge is one line, for each front door (`FRONT_DOORS`); `--json` prints the same lines as data.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from infra.access_log import ACCESS_LOG_FIELDS
from infra.config import Config, load_config
from maas.settings.names import AUTHORIZER_CACHE_TTL_S
from maas.tools.paths import REPO_ROOT

BENCH_FILE = REPO_ROOT / "bench-results" / "embeddings.json"
PLACEHOLDER_DURATION_MS = 5.0

# us-east-1 list prices (USD).
PRICE = {
    "apigw_rest_per_million": 3.50,  # REST API requests, first 333 M per month
    "apigw_http_per_million": 1.00,  # HTTP API requests (512 KB units), first 300 M per month: not offered, see README
    "lambda_request_per_million": 0.20,
    "lambda_gb_s": {"x86_64": 0.0000166667, "arm64": 0.0000133334},
    "ddb_wru_per_million": 0.625,  # on-demand write request units (since the Nov 2024 price cut)
    "ddb_rru_per_million": 0.125,  # on-demand read request units
    "logs_ingest_per_gb": 0.50,
    "data_out_per_gb": 0.09,  # to the internet, first 10 TB per month
    "dashboard_month": 3.00,  # beyond the 3 free dashboards per account
    "alarm_month": 0.10,  # standard-resolution alarm, one metric
    "sqs_per_million": 0.40,
    "xray_traces_per_million": 5.00,  # traces recorded
    "sagemaker_hour": {"ml.g5.xlarge": 1.408, "ml.g5.2xlarge": 1.515, "ml.g6.xlarge": 1.167, "ml.g4dn.xlarge": 0.7364},
}
LAMBDA_MB_PER_VCPU = 1769
GB = 1024**3
LOG_EVENT_OVERHEAD = 26  # bytes CloudWatch Logs adds to each event for billing
HOURS_PER_MONTH = 730
DEFAULT_MONTHLY_CALLS = 10_000_000
# Idle polling of the SQS event source mappings (the requests queue, the failed-events queue): a handful of
# long-polling ReceiveMessage calls (20 s each) per queue.
SQS_IDLE_POLLERS = 5
SQS_POLLED_QUEUES = 2
# A failed batch event (maas.jobs.failures), the only time the failure handler runs: the event sent to the
# failed-events queue, received and deleted by the event source mapping, then sent to the dead-letter queue;
# one invocation (batches of up to 10: at most one per event), one conditional UpdateItem of the job item (< 1 KB).
FAILED_EVENT_SQS_REQUESTS = 4
FAILED_EVENT_MEMORY_MB = 256
FAILED_EVENT_DURATION_MS = 50  # assumed: one DynamoDB update and one SQS send
FAILED_EVENT_LOG_BYTES = 400 + LOG_EVENT_OVERHEAD  # one warning line (job and tenant ids, no input)

FRONT_DOORS = ("rest", "function_url")
FRONT_DOOR_TITLES = {
    "rest": "REST API (API Gateway)",
    "function_url": "Lambda function URL, key checked in the function",
}

# Metering, the design of issue 12 (maas.metering): per billed call ONE PutItem of the usage event (<= 1 KB, no
# GSI: 1 WRU) and no quota read; quota leases: one UpdateItem (1 WRU) of the tenant's quota item per grant, a
# lease covering CALLS_PER_LEASE calls on average at scale; aggregation from DynamoDB Streams by an aggregator
# function, AGGREGATION_BATCH records per invocation, each batch one TransactWriteItems of the month aggregate,
# the day aggregate and the shard checkpoint (2 WRU per item). Stream reads by a Lambda trigger are free.
USAGE_EVENT_WRU = 1
CALLS_PER_LEASE = 50
LEASE_GRANT_WRU = 1
AGGREGATION_BATCH = 500
AGGREGATION_ITEMS = 3
TRANSACTION_WRU_PER_ITEM = 2
AGGREGATOR_MEMORY_MB = 256
AGGREGATOR_DURATION_MS = 50.0
AGGREGATOR_LOG_BYTES = 300 + LOG_EVENT_OVERHEAD  # one line per batch (assumed)

# Authentication: the key record and the tenant record (eventually consistent, up to 4 KB each).
AUTHORIZER_READS_RRU = 2 * 0.5
AUTHORIZER_DURATION_MS = 10.0  # assumed: two GetItem calls in-region, warm container
# A verdict is cached AUTHORIZER_CACHE_TTL_S per credential: by API Gateway (one cache) behind REST, by each warm
# container behind a function URL. Assumed traffic shape: ACTIVE_KEYS keys calling, URL_CONTAINERS warm containers.
ACTIVE_KEYS = 10
URL_CONTAINERS = 4
FRONT_DOOR_CHECK_MS = 0.05  # in-function cache hit and v2 -> v1 event conversion (assumed; sub-millisecond)

# Per call, the task function writes one EMF line (BilledRequests, BilledUnits, ComputeMilliseconds with the model,
# task and service dimensions: 403 bytes as Powertools prints it); its per-call INFO line is DEBUG, the authorizer's
# allowed verdict too, and Lambda's START/END/REPORT lines are filtered out (system log level WARN).
EMF_LOG_BYTES = 403 + LOG_EVENT_OVERHEAD

# The response of one input with the OpenAI SDK's default encoding (base64 of 384 float32) and the headers each
# door adds (request id, trace id, quota headers; estimated).
EMBEDDING_DIMENSIONS = 384
RESPONSE_HEADER_BYTES = {"rest": 450, "function_url": 350}


@dataclass(frozen=True)
class Line:
    item: str
    usd: float
    basis: str
    metering: bool = False


def bench_duration_ms(path: Path = BENCH_FILE) -> tuple[float, str, int | None]:
    """(handler p50 in ms, where it came from, CPUs it ran with) — a labelled placeholder without the benchmark."""
    try:
        data = json.loads(path.read_text())
        p50 = float(data["summary"]["handler"]["p50_ms"])
    except (FileNotFoundError, KeyError, TypeError, ValueError, json.JSONDecodeError):
        return PLACEHOLDER_DURATION_MS, f"PLACEHOLDER {PLACEHOLDER_DURATION_MS} ms (no {path.name} yet)", None
    threads = (data.get("settings") or {}).get("threads") or (data.get("machine") or {}).get("cpus")
    where = f"measured handler p50 {p50:.2f} ms ({path.name}, {data.get('date', 'undated')}, {threads} threads)"
    return p50, where, threads


def lambda_compute(memory_mb: int, duration_ms: float, arch: str) -> float:
    """USD per million invocations: memory x billed duration (1 ms granularity, rounded up)."""
    billed_s = math.ceil(duration_ms) / 1000
    return memory_mb / 1024 * billed_s * PRICE["lambda_gb_s"][arch] * 1e6


def representative_access_log_bytes() -> int:
    """One access log line as CloudWatch Logs bills it (infra.access_log's fields, typical values)."""
    sample = {
        "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
        "apiId": "a1b2c3d4e5",
        "time": "1795000000000",
        "ip": "203.0.113.7",
        "method": "POST",
        "resource": "/v1/embeddings",
        "status": "200",
        "latencyMs": "14",
        "tenant": "tenant-0001",
        "errorType": "-",
    }
    if set(sample) != set(ACCESS_LOG_FIELDS):
        raise ValueError("the sample access log line is out of date with infra.access_log.ACCESS_LOG_FIELDS")
    return len(json.dumps(sample, separators=(",", ":"))) + LOG_EVENT_OVERHEAD


def response_bytes(front_door: str, dimensions: int = EMBEDDING_DIMENSIONS) -> int:
    """Bytes out for one single-input embeddings call answered in base64 (the OpenAI SDK's default)."""
    body = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": base64.b64encode(bytes(4 * dimensions)).decode()}],
        "model": "all-minilm-l6-v2",
        "usage": {"prompt_tokens": 7, "total_tokens": 7},
    }
    return len(json.dumps(body, separators=(",", ":"))) + RESPONSE_HEADER_BYTES[front_door]


def calls_per_second(monthly_calls: float) -> float:
    return monthly_calls / (HOURS_PER_MONTH * 3600)


def traced_fraction(monthly_calls: float, reservoir_per_s: float = 1.0, rate: float = 0.05) -> float:
    """Share of calls an X-Ray rule (``reservoir_per_s`` each second, then ``rate`` of the rest) records when
    ``monthly_calls`` arrive at a steady rate. The defaults are X-Ray's default rule."""
    per_s = calls_per_second(monthly_calls)
    if per_s <= reservoir_per_s:
        return 1.0
    return (reservoir_per_s + rate * (per_s - reservoir_per_s)) / per_s


def cache_miss_fraction(monthly_calls: float, caches: int) -> float:
    """Share of calls whose verdict is not cached: each of ACTIVE_KEYS keys misses once per TTL in each cache."""
    return min(1.0, ACTIVE_KEYS * caches / (AUTHORIZER_CACHE_TTL_S * calls_per_second(monthly_calls)))


def metering_lines(config: Config) -> list[Line]:
    """The billing path per call: the event write, quota leases, and the asynchronous aggregation."""
    wru = PRICE["ddb_wru_per_million"]
    batch_wru = AGGREGATION_ITEMS * TRANSACTION_WRU_PER_ITEM
    invocations = 1 / AGGREGATION_BATCH
    return [
        Line(
            "Metering: usage event PutItem",
            USAGE_EVENT_WRU * wru,
            f"{USAGE_EVENT_WRU} WRU per call (one item <= 1 KB, no GSI)",
            True,
        ),
        Line(
            "Metering: quota lease UpdateItem",
            LEASE_GRANT_WRU * wru / CALLS_PER_LEASE,
            f"{LEASE_GRANT_WRU} WRU per lease, a lease per {CALLS_PER_LEASE} calls",
            True,
        ),
        Line(
            "Metering: aggregation transaction",
            batch_wru * wru / AGGREGATION_BATCH,
            f"{AGGREGATION_ITEMS} items x {TRANSACTION_WRU_PER_ITEM} WRU per batch of {AGGREGATION_BATCH} records",
            True,
        ),
        Line(
            "Metering: aggregator Lambda requests",
            PRICE["lambda_request_per_million"] * invocations,
            f"one invocation per {AGGREGATION_BATCH} calls (stream reads by Lambda are free)",
            True,
        ),
        Line(
            "Metering: aggregator Lambda compute",
            lambda_compute(AGGREGATOR_MEMORY_MB, AGGREGATOR_DURATION_MS, "x86_64") * invocations,
            f"{AGGREGATOR_MEMORY_MB} MB x {AGGREGATOR_DURATION_MS:g} ms (assumed) per batch",
            True,
        ),
        Line(
            "Metering: aggregator log line",
            AGGREGATOR_LOG_BYTES / AGGREGATION_BATCH * 1e6 / GB * PRICE["logs_ingest_per_gb"],
            f"{AGGREGATOR_LOG_BYTES} bytes per batch (assumed)",
            True,
        ),
    ]


def logs_usd(nbytes: float) -> float:
    return nbytes * 1e6 / GB * PRICE["logs_ingest_per_gb"]


def per_million(
    config: Config,
    duration_ms: float,
    duration_basis: str,
    task: str = "embeddings",
    monthly_calls: float = DEFAULT_MONTHLY_CALLS,
    front_door: str = "rest",
) -> list[Line]:
    """Every per-call AWS charge of one single-input ``task`` call behind ``front_door``, USD per million calls."""
    if front_door not in FRONT_DOORS:
        raise ValueError(f"unknown front door {front_door!r}; one of {FRONT_DOORS}")
    fn = config.task_function(task)
    auth = config.authorizer
    rest = front_door == "rest"
    lines: list[Line] = []
    if rest:
        lines.append(Line("API Gateway REST requests", PRICE["apigw_rest_per_million"], "$3.50 per million"))
        if config.authorizer_cache:
            miss = cache_miss_fraction(monthly_calls, 1)
            cached = f"{miss:.1%} of calls: {ACTIVE_KEYS} keys x 1 per {AUTHORIZER_CACHE_TTL_S} s gateway cache"
        else:
            miss, cached = 1.0, "every call (authorizer_cache false)"
        lines += [
            Line("Authorizer Lambda requests", miss * PRICE["lambda_request_per_million"], cached),
            Line(
                "Authorizer Lambda compute",
                miss * lambda_compute(auth.memory_mb, AUTHORIZER_DURATION_MS, auth.architecture),
                f"{auth.memory_mb} MB x {AUTHORIZER_DURATION_MS:g} ms (assumed), {auth.architecture}, on a miss",
            ),
            Line(
                "Authorizer DynamoDB reads",
                miss * AUTHORIZER_READS_RRU * PRICE["ddb_rru_per_million"],
                f"{AUTHORIZER_READS_RRU:g} RRU (key + tenant, eventually consistent) on a miss",
            ),
        ]
        duration = duration_ms
    else:
        miss = cache_miss_fraction(monthly_calls, URL_CONTAINERS)
        lines += [
            Line("Function URL requests", 0.0, "no charge beyond the Lambda invocation"),
            Line(
                "Key check DynamoDB reads",
                miss * AUTHORIZER_READS_RRU * PRICE["ddb_rru_per_million"],
                f"{AUTHORIZER_READS_RRU:g} RRU on {miss:.1%} of calls ({ACTIVE_KEYS} keys x {URL_CONTAINERS} containers"
                f" x 1 per {AUTHORIZER_CACHE_TTL_S} s)",
            ),
            Line(
                "Key check Lambda compute",
                miss * lambda_compute(fn.memory_mb, AUTHORIZER_DURATION_MS, fn.architecture),
                f"{AUTHORIZER_DURATION_MS:g} ms more of the task function on a miss",
            ),
        ]
        duration = duration_ms + FRONT_DOOR_CHECK_MS
        duration_basis += f" + {FRONT_DOOR_CHECK_MS:g} ms key check (cached)"
    lines += [
        Line(f"{task} Lambda requests", PRICE["lambda_request_per_million"], "$0.20 per million"),
        Line(
            f"{task} Lambda compute",
            lambda_compute(fn.memory_mb, duration, fn.architecture),
            f"{fn.memory_mb} MB x {math.ceil(duration)} ms billed; {duration_basis}",
        ),
        *metering_lines(config),
    ]
    if rest:
        access = representative_access_log_bytes()
        lines.append(
            Line("Logs: access log line", logs_usd(access), f"{access} bytes ({len(ACCESS_LOG_FIELDS)} fields)")
        )
    lines.append(Line("Logs: function EMF metrics line", logs_usd(EMF_LOG_BYTES), f"{EMF_LOG_BYTES} bytes"))
    if config.tracing and rest:
        fraction = traced_fraction(monthly_calls, config.tracing_reservoir_per_s, config.tracing_rate)
        lines.append(
            Line(
                "X-Ray traces",
                fraction * PRICE["xray_traces_per_million"],
                f"{fraction:.2%} of calls: rule {config.tracing_reservoir_per_s}/s + {config.tracing_rate:.2%} "
                f"at {monthly_calls / 1e6:g} M calls/month",
            )
        )
    elif config.tracing:
        lines.append(Line("X-Ray traces", 0.0, "PassThrough: only calls an upstream sampled (none from a URL client)"))
    out = response_bytes(front_door)
    lines.append(
        Line(
            "Data transfer out",
            out * 1e6 / GB * PRICE["data_out_per_gb"],
            f"{out} bytes per response (base64, {EMBEDDING_DIMENSIONS} dims, with headers)",
        )
    )
    return lines


def summary(lines: list[Line]) -> dict:
    """The JSON form of one front door's lines: total, metering and every item, USD per million calls."""
    return {
        "total": round(sum(ln.usd for ln in lines), 4),
        "metering": round(sum(ln.usd for ln in lines if ln.metering), 4),
        "items": {ln.item: round(ln.usd, 4) for ln in lines},
    }


def per_million_calls(config: Config, duration_ms: float, basis: str) -> dict[str, list[Line]]:
    """Front door -> its per-call lines, at one duration: the one source of the table and of `--json`."""
    return {door: per_million(config, duration_ms, basis, front_door=door) for door in FRONT_DOORS}


def failed_event_lines(config: Config) -> list[Line]:
    """Per million failed batch events: what the failure handler costs. Nothing per successful call: it runs only
    when a batch worker gave up on an event."""
    fn = config.failed_events
    return [
        Line("SQS requests", FAILED_EVENT_SQS_REQUESTS * PRICE["sqs_per_million"], "send, receive, delete, park"),
        Line("Lambda requests", PRICE["lambda_request_per_million"], "at most one invocation per event"),
        Line(
            "Lambda compute",
            lambda_compute(FAILED_EVENT_MEMORY_MB, FAILED_EVENT_DURATION_MS, fn.architecture),
            f"{FAILED_EVENT_MEMORY_MB} MB x {FAILED_EVENT_DURATION_MS} ms (assumed)",
        ),
        Line("DynamoDB job update", PRICE["ddb_wru_per_million"], "one conditional UpdateItem, 1 WRU"),
        Line("CloudWatch Logs", logs_usd(FAILED_EVENT_LOG_BYTES), f"{FAILED_EVENT_LOG_BYTES} bytes per event"),
    ]


def alarm_count(config: Config) -> int:
    """Alarms the Monitoring construct and autoscaling create (target tracking adds two per policy at deploy)."""
    # authorizer, usage, jobs, tasks (rerank and v2 with the embeddings model), proxies, two batch workers, the
    # usage aggregator, the failed-events handler
    tasks = set(config.lambda_tasks) | ({"rerank", "v2"} if config.embedding_model is not None else set())
    functions = 3 + len(tasks) + len(config.sagemaker_models) + 2 + 1 + 1
    throttled = functions - 2  # all but the batch workers
    # API 5xx + p99, errors per function, throttles, dead letters, the aggregator's iterator age
    alarms = 2 + functions + throttled + 1 + 1
    for model in config.sagemaker_models:
        alarms += 1 + 2  # 5xx, target tracking high/low
        if model.sagemaker.min_capacity == 0:
            alarms += 1  # scale out from zero
    return alarms


def idle_monthly(config: Config) -> list[Line]:
    lines = [
        Line("CloudWatch dashboard", PRICE["dashboard_month"], "one dashboard (free if the account has fewer than 3)"),
        Line("CloudWatch alarms", alarm_count(config) * PRICE["alarm_month"], f"{alarm_count(config)} x $0.10"),
        Line(
            "SQS event source polling",
            SQS_POLLED_QUEUES * SQS_IDLE_POLLERS * 3 * 60 * HOURS_PER_MONTH / 1e6 * PRICE["sqs_per_million"],
            f"{SQS_POLLED_QUEUES} queues x ~{SQS_IDLE_POLLERS} long-polling ReceiveMessage calls per 20 s (within "
            "SQS's free tier in most accounts)",
        ),
    ]
    for name in config.lambda_tasks:
        fn = config.task_function(name)
        if fn.provisioned_concurrency:
            gb_s = fn.memory_mb / 1024 * fn.provisioned_concurrency * HOURS_PER_MONTH * 3600
            lines.append(
                Line(f"{name} provisioned concurrency", gb_s * 0.0000041667, f"{fn.provisioned_concurrency} x")
            )
    for model in config.sagemaker_models:
        s = model.sagemaker
        hourly = PRICE["sagemaker_hour"].get(s.instance_type)
        if s.min_capacity == 0:
            lines.append(Line(f"SageMaker {model.name}", 0.0, f"{s.instance_type}, scaled to zero when idle"))
        elif hourly is None:
            lines.append(Line(f"SageMaker {model.name}", float("nan"), f"{s.instance_type}: price not recorded"))
        else:
            lines.append(
                Line(
                    f"SageMaker {model.name}",
                    s.min_capacity * hourly * HOURS_PER_MONTH,
                    f"{s.min_capacity} x {s.instance_type} at ${hourly}/h",
                )
            )
    lines.append(Line("DynamoDB, S3, log storage, API Gateway, Lambda", 0.0, "pay per use/GB: ~$0 with no traffic"))
    return lines


def table(lines: list[Line], unit: str) -> str:
    rows = [f"| item | {unit} | basis |", "|---|---:|---|"]
    rows += [f"| {ln.item} | {ln.usd:.3f} | {ln.basis} |" for ln in lines]
    rows.append(f"| **total** | **{sum(ln.usd for ln in lines):.2f}** | |")
    return "\n".join(rows)


def report(config: Config, bench: Path = BENCH_FILE) -> str:
    """The human report: idle cost, then one per-million table per front door, from `per_million_calls`."""
    duration, basis, threads = bench_duration_ms(bench)
    fn = config.task_function("embeddings")
    parts = ["Idle, per month (us-east-1):", "", table(idle_monthly(config), "USD / month")]
    doors = per_million_calls(config, duration, basis)
    for door, lines in doors.items():
        parts += [
            "",
            f"Per million POST /v1/embeddings calls behind the {FRONT_DOOR_TITLES[door]} (`{door}`; one input, "
            f"base64, {DEFAULT_MONTHLY_CALLS / 1e6:g} M calls/month; metering "
            f"${sum(ln.usd for ln in lines if ln.metering):.3f}):",
            "",
            table(lines, "USD / million"),
        ]
    share = fn.memory_mb / LAMBDA_MB_PER_VCPU
    if threads and share < threads:
        scaled = duration * threads / share
        totals = {
            door: sum(ln.usd for ln in lines)
            for door, lines in per_million_calls(config, scaled, f"{duration:.2f} ms x {threads} / {share:.2f}").items()
        }
        parts += [
            "",
            f"Upper bound if the handler scales with CPU share ({fn.memory_mb} MB = {share:.2f} vCPU in Lambda, "
            f"benchmark used {threads}): {scaled:.1f} ms, totals "
            + ", ".join(f"{door} ${usd:.2f}" for door, usd in totals.items())
            + " per million.",
        ]
    parts += [
        "",
        "Per million failed batch events (the failure handler runs only then; nothing per successful call):",
        "",
        table(failed_event_lines(config), "USD / million"),
    ]
    return "\n".join(parts)


def as_json(config: Config, bench: Path = BENCH_FILE) -> dict:
    """`--json`: {"per_million_calls": {front door: {"total", "metering", "items"}}, "basis": {...}}."""
    duration, basis, _ = bench_duration_ms(bench)
    doors = per_million_calls(config, duration, basis)
    return {
        "per_million_calls": {door: summary(lines) for door, lines in doors.items()},
        "basis": {"duration_ms": duration, "duration": basis, "monthly_calls": DEFAULT_MONTHLY_CALLS},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bench", type=Path, default=BENCH_FILE)
    parser.add_argument("--config", help="configuration file (default infra/config.json)")
    parser.add_argument("--json", action="store_true", help="print the per-million figures as JSON")
    args = parser.parse_args(argv)
    config = load_config({"maas:config": args.config} if args.config else None)
    print(json.dumps(as_json(config, args.bench), indent=2) if args.json else report(config, args.bench))
    return 0


if __name__ == "__main__":
    sys.exit(main())
