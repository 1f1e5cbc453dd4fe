"""What the deployment costs at idle and per million calls, from the configuration and the benchmark.

    python -m infra.cost [--json] [--bench bench-results/embeddings.json] [--config infra/config.json]

Prices are us-east-1 list prices (on-demand, no free tier) as recorded below; check the pricing pages before
relying on them. Durations come from the benchmark's JSON (handler p50) when it exists, otherwise a clearly
labelled placeholder. The benchmark ran on a developer machine, not in Lambda: Lambda gives a function a CPU
share proportional to memory (1,769 MB = one vCPU), so the table also shows the duration scaled by that share.
Every per-call charge is one line, for each front door (`FRONT_DOORS`), and every per-line, per-part and per-job
charge of the two batch engines (`BATCH_ENGINE_TITLES`); `--json` prints the same lines as data.
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
    "s3_put_per_million": 5.00,  # S3 Standard PUT, COPY, POST (multipart create/part/complete), LIST
    "s3_get_per_million": 0.40,  # S3 Standard GET, HEAD and the rest
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


# The batch engines, counted from the calls maas.jobs.worker and maas.jobs.batch_run make (per part, per job, per
# continuation invocation). A line's compute is the measured throughput of a whole job through the real S3 worker
# (README, `maas bench batch` 2026-11-23: 191.4 lines/s on 2 threads, length-bucketed): both engines embed a part's
# lines in one length-bucketed run (the Batch API's 100-line parts bucket a little less well).
BATCH_LINE_MS = 1000 / 191.4
BATCH_BENCH_THREADS = 2
BATCH_LINE_BASIS = "measured 191.4 lines/s (`maas bench batch`, 2 threads, 2026-11-23)"
BATCH_RESERVE_MS = 10_000  # maas.jobs.worker.RESERVE_MS: an invocation stops this long before its timeout
BATCH_API_PART_LINES = 100  # maas.jobs.batch_run.BATCH_PART_LINES
ASSEMBLY_PART_BYTES = 8 * 1024 * 1024  # maas.jobs.files.ASSEMBLY_PART_BYTES: the output file's multipart parts
# The worker waits on each AWS call of a part: in-region latencies (assumed; S3 small-object PUT/GET first byte
# ~20 ms, a DynamoDB item call ~5 ms). The measured throughput above had 1,000-line parts, where they hardly show.
S3_CALL_MS, DDB_CALL_MS = 20.0, 5.0
BATCH_POLLS = 10  # GET /v1/batches/{id} (or /v1/jobs/{id}) calls a client makes per job (assumed)
BATCH_END_LOG_BYTES = 300 + LOG_EVENT_OVERHEAD  # the worker's one INFO line per job ("batch ended", "job completed")
# Reference job sizes for the per-million-lines totals: per-job charges are spread over the job's lines.
BATCH_JOB_LINES = {"batch_api": 10_000, "jobs": 100_000}
BATCH_ENGINE_TITLES = {
    "batch_api": "POST /v1/batches (OpenAI Batch API, 100-line parts)",
    "jobs": "POST /v1/jobs (the jobs engine, MAAS_CHUNK_LINES parts)",
}


@dataclass(frozen=True)
class BatchCalls:
    """The AWS calls one batch engine makes: per part, per job, per continuation invocation."""

    part_lines: int
    # per part
    part_s3_gets: int  # the worker's: the part's byte range (for the Batch API also the part files read back)
    part_s3_puts: int  # the part's result files
    part_download_gets: int  # the client's download of each part (the jobs engine: a presigned URL per part)
    part_rru: int  # consistent GetItem of the job before each part (a cancel is seen at the part boundary)
    part_wru: int  # the conditional cursor advance
    # per job
    job_s3_gets: int  # HEAD of the input, the validation read, the download of the output (HEAD, GET)
    job_s3_puts: int  # the input upload, the copy to the job's key, small output files (multipart: more, below)
    job_rru: int  # the worker's reads and one per poll
    job_wru: int
    job_api_calls: int  # create, upload, polls, download: requests of the REST API (not metered)
    assembled_files: int  # output files assembled from the parts (S3 multipart when over ASSEMBLY_PART_BYTES)
    # per continuation invocation (an SQS message to the requests queue)
    continuation_rru: int
    output_line_bytes: int


def batch_output_line_bytes(engine: str, dimensions: int = EMBEDDING_DIMENSIONS) -> int:
    """One output line of ``engine`` for a one-input embeddings line in base64, as the worker writes it."""
    vector = base64.b64encode(bytes(4 * dimensions)).decode()
    if engine == "jobs":
        line = {"line": 123456, "custom_id": "doc-000123", "embedding": vector, "tokens": 7}
    else:
        body = {
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": vector}],
            "model": "all-minilm-l6-v2",
            "usage": {"prompt_tokens": 7, "total_tokens": 7},
        }
        line = {
            "id": "batch_req_" + "0" * 24,
            "custom_id": "request-000123",
            "response": {"status_code": 200, "request_id": "batch-" + "0" * 40 + ".12", "body": body},
            "error": None,
        }
    return len(json.dumps(line, separators=(",", ":"))) + 1


def batch_calls(engine: str, chunk_lines: int = 5000) -> BatchCalls:
    """What ``engine`` ("batch_api" or "jobs") calls, counted from its code (comments say where)."""
    if engine == "batch_api":
        # batch_run._one_part: one ranged GET, two PUTs (output, errors), jobs.advance; run_batch's loop reads the
        # record (BatchStore.get) before each part; _finalize reads both part files back (2 GETs).
        # Per job: files.create PUT, BatchesService.create (files.get HEAD, BatchStore.create PutItem, copy_object),
        # run_job (jobs.get, tenant GetItem, jobs.start), run_batch (BatchStore.get, the validation GET,
        # store.validated), the end (BatchStore.get, finalizing, finish, the output file assembled: its error file
        # is empty when every line is good, and then not written), the download (HEAD and GET), one read per poll.
        return BatchCalls(
            part_lines=BATCH_API_PART_LINES,
            part_s3_gets=1 + 2,
            part_s3_puts=2,
            part_download_gets=0,
            part_rru=1,
            part_wru=1,
            job_s3_gets=4,
            job_s3_puts=2,
            job_rru=4 + BATCH_POLLS,
            job_wru=5,
            job_api_calls=3 + BATCH_POLLS,
            assembled_files=1,
            continuation_rru=3,  # jobs.get, tenant, BatchStore.get
            output_line_bytes=batch_output_line_bytes(engine),
        )
    if engine == "jobs":
        # worker._one_part: one ranged GET, one PUT, jobs.advance; the client downloads each part (1 GET).
        # Per job: JobsService.create PutItem, the client's presigned PUT, run_job (jobs.get, tenant, jobs.start),
        # the manifest PUT, jobs.finish, one read per poll.
        return BatchCalls(
            part_lines=chunk_lines,
            part_s3_gets=1,
            part_s3_puts=1,
            part_download_gets=1,
            part_rru=0,
            part_wru=1,
            job_s3_gets=0,
            job_s3_puts=2,
            job_rru=2 + BATCH_POLLS,
            job_wru=3,
            job_api_calls=2 + BATCH_POLLS,
            assembled_files=0,
            continuation_rru=2,  # jobs.get, tenant
            output_line_bytes=batch_output_line_bytes(engine),
        )
    raise ValueError(f"unknown batch engine {engine!r}; one of {tuple(BATCH_ENGINE_TITLES)}")


def continuations_per_job(config: Config, job_lines: int, line_ms: float = BATCH_LINE_MS) -> int:
    """SQS continuations a ``job_lines`` job needs: the S3 worker runs until its timeout's reserve, each
    continuation (the SQS worker) likewise."""
    first = max(1.0, (config.batch_s3.timeout_s * 1000 - BATCH_RESERVE_MS) / line_ms)
    then = max(1.0, (config.batch_sqs.timeout_s * 1000 - BATCH_RESERVE_MS) / line_ms)
    return max(0, math.ceil((job_lines - first) / then))


def batch_lines(
    config: Config, engine: str, job_lines: int | None = None, line_ms: float = BATCH_LINE_MS
) -> list[Line]:
    """Every AWS charge of the batch ``engine``, USD per million input lines (one-input embeddings lines, base64
    output), with the per-job charges spread over ``job_lines``-line jobs."""
    job_lines = job_lines or BATCH_JOB_LINES[engine]
    calls = batch_calls(engine)
    fn = config.batch_s3
    parts = 1e6 / calls.part_lines  # per million lines
    s3_calls, ddb_calls = calls.part_s3_gets + calls.part_s3_puts, calls.part_rru + calls.part_wru + USAGE_EVENT_WRU
    wait_ms = s3_calls * S3_CALL_MS + ddb_calls * DDB_CALL_MS
    jobs = 1e6 / job_lines
    per_job = continuations_per_job(config, job_lines, line_ms + wait_ms / calls.part_lines)
    continuations = per_job * jobs
    invocations = jobs + continuations
    get, put = PRICE["s3_get_per_million"] / 1e6, PRICE["s3_put_per_million"] / 1e6
    rru, wru = PRICE["ddb_rru_per_million"] / 1e6, PRICE["ddb_wru_per_million"] / 1e6
    output_bytes = job_lines * calls.output_line_bytes
    per_file_puts = 1 if output_bytes < ASSEMBLY_PART_BYTES else 2 + math.ceil(output_bytes / ASSEMBLY_PART_BYTES)
    each = f"{calls.part_lines:,}-line parts, {job_lines:,}-line jobs"
    lines = [
        Line(
            "Lambda compute",
            fn.memory_mb / 1024 * line_ms / 1000 * PRICE["lambda_gb_s"][fn.architecture] * 1e6,
            f"{fn.memory_mb} MB x {line_ms:.2f} ms per line; {BATCH_LINE_BASIS} ({each})",
        ),
        Line(
            "Lambda compute waiting on each part's AWS calls",
            parts * fn.memory_mb / 1024 * wait_ms / 1000 * PRICE["lambda_gb_s"][fn.architecture],
            f"{s3_calls} S3 x {S3_CALL_MS:g} ms + {ddb_calls} DynamoDB x {DDB_CALL_MS:g} ms "
            "(assumed latencies) per part",
        ),
        Line(
            "Lambda requests",
            invocations * PRICE["lambda_request_per_million"] / 1e6,
            f"{invocations:,.0f} invocations: one per job + {continuations:,.0f} continuations",
        ),
        Line(
            "S3 GET per part",
            parts * (calls.part_s3_gets + calls.part_download_gets) * get,
            f"{calls.part_s3_gets} by the worker + {calls.part_download_gets} download per part ({parts:,.0f} parts)",
        ),
        Line("S3 PUT per part", parts * calls.part_s3_puts * put, f"{calls.part_s3_puts} per part"),
        Line(
            "DynamoDB job reads per part",
            parts * calls.part_rru * rru,
            f"{calls.part_rru} consistent GetItem (1 RRU) per part",
        ),
        Line("DynamoDB cursor advance per part", parts * calls.part_wru * wru, "1 conditional UpdateItem (1 WRU)"),
        *(
            Line(ln.item + " per part", ln.usd * parts / 1e6, ln.basis + "; one billed usage event per part", True)
            for ln in metering_lines(config)
        ),
        Line(
            "S3 requests per job",
            jobs * (calls.job_s3_gets * get + (calls.job_s3_puts + calls.assembled_files * per_file_puts) * put),
            f"{calls.job_s3_gets} GET + {calls.job_s3_puts} PUT"
            + (f" + {calls.assembled_files} x {per_file_puts} for the output files" if calls.assembled_files else "")
            + f" per job ({jobs:,.0f} jobs)",
        ),
        Line(
            "DynamoDB job item per job",
            jobs * (calls.job_rru * rru + calls.job_wru * wru),
            f"{calls.job_rru} consistent reads + {calls.job_wru} writes (each <= 1 KB) per job",
        ),
        Line(
            "API requests per job",
            jobs * calls.job_api_calls * (PRICE["apigw_rest_per_million"] + PRICE["lambda_request_per_million"]) / 1e6,
            f"{calls.job_api_calls} REST calls per job (create, upload, download, {BATCH_POLLS} polls; not metered)",
        ),
        Line(
            "SQS continuations",
            continuations * 3 * PRICE["sqs_per_million"] / 1e6,
            f"send, receive, delete per continuation ({per_job} per job)",
        ),
        Line(
            "DynamoDB reads per continuation",
            continuations * calls.continuation_rru * rru,
            f"{calls.continuation_rru} consistent GetItem (the job, the tenant) per continuation",
        ),
        Line(
            "Logs: EMF line per invocation, INFO line per job",
            logs_usd(invocations * EMF_LOG_BYTES / 1e6 + jobs * BATCH_END_LOG_BYTES / 1e6),
            f"{EMF_LOG_BYTES} + {BATCH_END_LOG_BYTES} bytes",
        ),
        Line(
            "Data transfer out",
            calls.output_line_bytes * 1e6 / GB * PRICE["data_out_per_gb"],
            f"{calls.output_line_bytes} bytes per output line (base64, {EMBEDDING_DIMENSIONS} dims)",
        ),
    ]
    if config.tracing:
        lines.append(
            Line("X-Ray traces", invocations * PRICE["xray_traces_per_million"] / 1e6, "at most one per invocation")
        )
    return lines


def per_job_usd(config: Config, engine: str, job_lines: int) -> float:
    """The fixed AWS charges of one ``job_lines``-line job (besides its lines)."""
    per_million = {ln.item: ln.usd for ln in batch_lines(config, engine, job_lines)}
    return sum(v for k, v in per_million.items() if k.endswith("per job")) * job_lines / 1e6


def alarm_count(config: Config) -> int:
    """Alarms the Monitoring construct and autoscaling create (target tracking adds two per policy at deploy)."""
    # authorizer, usage, jobs, files and batches, tasks (rerank and v2 with the embeddings model), proxies, two batch
    # workers, the usage aggregator, the failed-events handler
    tasks = set(config.lambda_tasks) | ({"rerank", "v2"} if config.embedding_model is not None else set())
    functions = 4 + len(tasks) + len(config.sagemaker_models) + 2 + 1 + 1
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


def table(lines: list[Line], unit: str, digits: int = 3) -> str:
    rows = [f"| item | {unit} | basis |", "|---|---:|---|"]
    rows += [f"| {ln.item} | {ln.usd:.{digits}f} | {ln.basis} |" for ln in lines]
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
    sync = sum(ln.usd for ln in doors["rest"])
    for engine, title in BATCH_ENGINE_TITLES.items():
        lines = batch_lines(config, engine)
        total = sum(ln.usd for ln in lines)
        fixed = per_job_usd(config, engine, BATCH_JOB_LINES[engine])
        parts += [
            "",
            f"Per million input lines of {title}: one-input embeddings lines, base64 output, "
            f"{BATCH_JOB_LINES[engine]:,}-line jobs (each job's fixed calls ${fixed:.5f});"
            f" {total / sync:.0%} of the REST route's ${sync:.2f} per million single-input calls:",
            "",
            table(lines, "USD / million lines", digits=4),
        ]
        share = config.batch_s3.memory_mb / LAMBDA_MB_PER_VCPU
        scaled = BATCH_LINE_MS * BATCH_BENCH_THREADS / share
        upper = sum(ln.usd for ln in batch_lines(config, engine, line_ms=scaled))
        parts += [
            "",
            f"Upper bound if a line's compute scales with CPU share ({config.batch_s3.memory_mb} MB = {share:.2f} "
            f"vCPU, benchmark used {BATCH_BENCH_THREADS}): {scaled:.1f} ms per line, total ${upper:.2f} per million "
            "lines.",
        ]
    return "\n".join(parts)


def as_json(config: Config, bench: Path = BENCH_FILE) -> dict:
    """`--json`: {"per_million_calls": {front door: {"total", "metering", "items"}}, "batch_per_million_lines":
    {engine: {"total", "metering", "items", "part_lines", "job_lines", "per_job"}}, "basis": {...}}."""
    duration, basis, _ = bench_duration_ms(bench)
    doors = per_million_calls(config, duration, basis)
    batches = {}
    for engine in BATCH_ENGINE_TITLES:
        job_lines = BATCH_JOB_LINES[engine]
        batches[engine] = {
            **summary(batch_lines(config, engine)),
            "part_lines": batch_calls(engine).part_lines,
            "job_lines": job_lines,
            "per_job": round(per_job_usd(config, engine, job_lines), 6),
        }
    return {
        "per_million_calls": {door: summary(lines) for door, lines in doors.items()},
        "batch_per_million_lines": batches,
        "basis": {
            "duration_ms": duration,
            "duration": basis,
            "monthly_calls": DEFAULT_MONTHLY_CALLS,
            "batch_line_ms": round(BATCH_LINE_MS, 3),
            "batch_line": BATCH_LINE_BASIS,
        },
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
