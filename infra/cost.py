"""What the deployment costs at idle and per million calls, from the configuration and the benchmark.

    python -m infra.cost [--bench bench-results/embeddings.json] [--config infra/config.json]

Prices are us-east-1 list prices (on-demand, no free tier) as recorded below; check the pricing pages before
relying on them. Durations come from the benchmark's JSON (handler p50) when it exists, otherwise a clearly
labelled placeholder. The benchmark ran on a developer machine, not in Lambda: Lambda gives a function a CPU
share proportional to memory (1,769 MB = one vCPU), so the table also shows the duration scaled by that share.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from infra.access_log import ACCESS_LOG_FIELDS
from infra.config import Config, load_config
from maas.tools.paths import REPO_ROOT

BENCH_FILE = REPO_ROOT / "bench-results" / "embeddings.json"
PLACEHOLDER_DURATION_MS = 5.0

# us-east-1 list prices (USD).
PRICE = {
    "apigw_rest_per_million": 3.50,  # REST API requests, first 333 M per month
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

# Metering, per billable call (maas.metering.store): one TransactWriteItems of three items (the usage event, the
# month item holding the quota counter and monthly aggregates, the day item); transactional writes cost 2 WRU
# per item of up to 1 KB, and the event's copy into the gsi1 index is one more standard write.
METERING_TRANSACTION_ITEMS = 3
METERING_GSI_WRITES = 1
# Before any compute, the task function reads the month item's quota counter (strongly consistent: 1 RRU).
QUOTA_PRECHECK_RRU = 1.0
# The authorizer reads the key record and the tenant record (eventually consistent, up to 4 KB each).
AUTHORIZER_READS_RRU = 2 * 0.5
AUTHORIZER_DURATION_MS = 10.0  # assumed: two GetItem calls in-region, warm container
# X-Ray's default sampling rule: the first request each second, then 5% of the rest.
XRAY_RESERVOIR_PER_S = 1.0
XRAY_FIXED_RATE = 0.05
DEFAULT_MONTHLY_CALLS = 10_000_000
# Idle polling of the SQS event source mapping: a handful of long-polling ReceiveMessage calls (20 s each).
SQS_IDLE_POLLERS = 5


@dataclass(frozen=True)
class Line:
    item: str
    usd: float
    basis: str


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
    sample = {
        "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
        "apiId": "a1b2c3d4e5",
        "time": "1795000000000",
        "ip": "203.0.113.7",
        "method": "POST",
        "resource": "/v1/embeddings",
        "status": "200",
        "latencyMs": "14",
        "integrationMs": "12",
        "responseBytes": "8215",
        "tenant": "tenant-0001",
        "errorType": "-",
    }
    if set(sample) != set(ACCESS_LOG_FIELDS):
        raise ValueError("the sample access log line is out of date with infra.api.ACCESS_LOG_FIELDS")
    return len(json.dumps(sample, separators=(",", ":"))) + LOG_EVENT_OVERHEAD


# Per call, the task function writes one structured line ("embeddings": inputs, tokens, request and tenant ids)
# and one EMF line (BilledRequests, BilledUnits, ComputeMilliseconds); the authorizer one line. Lambda's
# START/END/REPORT lines are filtered out (system log level WARN).
TASK_LOG_BYTES = 520 + LOG_EVENT_OVERHEAD + 430 + LOG_EVENT_OVERHEAD
AUTHORIZER_LOG_BYTES = 380 + LOG_EVENT_OVERHEAD
# One 384-dimension float embedding as OpenAI-style JSON (encoding_format=base64 is about a quarter).
RESPONSE_BYTES = 8_200


def traced_fraction(monthly_calls: float) -> float:
    """Share of calls X-Ray's default rule records when ``monthly_calls`` arrive at a steady rate."""
    rate = monthly_calls / (HOURS_PER_MONTH * 3600)
    if rate <= XRAY_RESERVOIR_PER_S:
        return 1.0
    return (XRAY_RESERVOIR_PER_S + XRAY_FIXED_RATE * (rate - XRAY_RESERVOIR_PER_S)) / rate


def per_million(
    config: Config,
    duration_ms: float,
    duration_basis: str,
    task: str = "embeddings",
    monthly_calls: float = DEFAULT_MONTHLY_CALLS,
) -> list[Line]:
    fn = config.task_function(task)
    auth = config.authorizer
    log_bytes = representative_access_log_bytes() + TASK_LOG_BYTES + AUTHORIZER_LOG_BYTES
    wru = 2 * METERING_TRANSACTION_ITEMS + METERING_GSI_WRITES
    lines = [
        Line("API Gateway REST requests", PRICE["apigw_rest_per_million"], "$3.50 per million"),
        Line("Authorizer Lambda requests", PRICE["lambda_request_per_million"], "$0.20 per million (no gateway cache)"),
        Line(
            "Authorizer Lambda compute",
            lambda_compute(auth.memory_mb, AUTHORIZER_DURATION_MS, auth.architecture),
            f"{auth.memory_mb} MB x {AUTHORIZER_DURATION_MS:g} ms (assumed), {auth.architecture}",
        ),
        Line(
            "Authorizer DynamoDB reads",
            AUTHORIZER_READS_RRU * PRICE["ddb_rru_per_million"],
            f"{AUTHORIZER_READS_RRU:g} RRU (key + tenant, eventually consistent)",
        ),
        Line(f"{task} Lambda requests", PRICE["lambda_request_per_million"], "$0.20 per million"),
        Line(
            f"{task} Lambda compute",
            lambda_compute(fn.memory_mb, duration_ms, fn.architecture),
            f"{fn.memory_mb} MB x {math.ceil(duration_ms)} ms billed; {duration_basis}",
        ),
        Line(
            "Quota precheck DynamoDB read",
            QUOTA_PRECHECK_RRU * PRICE["ddb_rru_per_million"],
            f"{QUOTA_PRECHECK_RRU:g} RRU (month item, strongly consistent)",
        ),
        Line(
            "Metering DynamoDB writes",
            wru * PRICE["ddb_wru_per_million"],
            f"{wru} WRU: {METERING_TRANSACTION_ITEMS} items x 2 (transaction) + {METERING_GSI_WRITES} GSI write",
        ),
        Line(
            "CloudWatch Logs ingestion",
            log_bytes * 1e6 / GB * PRICE["logs_ingest_per_gb"],
            f"{log_bytes} bytes per call (access log + function + authorizer lines)",
        ),
        Line(
            "Data transfer out",
            RESPONSE_BYTES * 1e6 / GB * PRICE["data_out_per_gb"],
            f"{RESPONSE_BYTES} bytes per response (one float embedding)",
        ),
    ]
    if config.tracing:
        fraction = traced_fraction(monthly_calls)
        lines.append(
            Line(
                "X-Ray traces",
                fraction * PRICE["xray_traces_per_million"],
                f"{fraction:.0%} of calls sampled at {monthly_calls / 1e6:g} M calls/month (100% below 1 call/s)",
            )
        )
    return lines


def alarm_count(config: Config) -> int:
    """Alarms the Monitoring construct and autoscaling create (target tracking adds two per policy at deploy)."""
    # authorizer, usage, jobs, tasks (rerank and v2 with the embeddings model), proxies, two batch workers
    tasks = set(config.lambda_tasks) | ({"rerank", "v2"} if config.embedding_model is not None else set())
    functions = 3 + len(tasks) + len(config.sagemaker_models) + 2
    api_facing = functions - 2
    alarms = 2 + functions + api_facing + 1  # API 5xx + p99, errors per function, throttles, dead letters
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
            SQS_IDLE_POLLERS * 3 * 60 * HOURS_PER_MONTH / 1e6 * PRICE["sqs_per_million"],
            f"~{SQS_IDLE_POLLERS} long-polling ReceiveMessage calls per 20 s (within SQS's free tier in most accounts)",
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
    duration, basis, threads = bench_duration_ms(bench)
    fn = config.task_function("embeddings")
    parts = [
        "Idle, per month (us-east-1):",
        "",
        table(idle_monthly(config), "USD / month"),
        "",
        f"Per million POST /v1/embeddings calls (one input, {DEFAULT_MONTHLY_CALLS / 1e6:g} M calls/month):",
        "",
        table(per_million(config, duration, basis), "USD / million"),
    ]
    share = fn.memory_mb / LAMBDA_MB_PER_VCPU
    if threads and share < threads:
        scaled = duration * threads / share
        scaled_lines = per_million(config, scaled, f"{duration:.2f} ms x {threads} CPUs / {share:.2f} vCPU")
        parts += [
            "",
            f"Upper bound if the handler scales with CPU share ({fn.memory_mb} MB = {share:.2f} vCPU in Lambda, "
            f"benchmark used {threads}): {scaled:.1f} ms, total ${sum(ln.usd for ln in scaled_lines):.2f} per million.",
        ]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bench", type=Path, default=BENCH_FILE)
    parser.add_argument("--config", help="configuration file (default infra/config.json)")
    args = parser.parse_args(argv)
    config = load_config({"maas:config": args.config} if args.config else None)
    print(report(config, args.bench))
    return 0


if __name__ == "__main__":
    sys.exit(main())
