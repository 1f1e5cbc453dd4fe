"""The cost report: itemised, reproducible from the configuration and the benchmark's JSON, and within the targets.

The targets are arithmetic checks on the model (issue 12): metering <= $0.70 per million calls; all-in <= $5 per
million single-input base64 calls behind the REST API and <= $2 behind the cheapest front door.
"""

from __future__ import annotations

import json
import math
import uuid
from collections import Counter

import pytest

from infra import cost
from infra.config import load_config

METERING_TARGET, REST_TARGET, CHEAPEST_TARGET = 0.70, 5.00, 2.00


@pytest.fixture
def bench(tmp_path):
    path = tmp_path / "embeddings.json"
    path.write_text(json.dumps({"date": "d", "settings": {"threads": 2}, "summary": {"handler": {"p50_ms": 4.2}}}))
    return path


@pytest.fixture
def doors(tmp_path):
    """The --json figures at the placeholder duration (5 ms: longer than any measured handler p50 here)."""
    return cost.as_json(load_config(), tmp_path / "absent.json")["per_million_calls"]


def test_measured_duration_is_used_when_the_benchmark_exists(bench, tmp_path):
    assert cost.bench_duration_ms(bench)[0] == 4.2
    duration, basis, threads = cost.bench_duration_ms(tmp_path / "absent.json")
    assert duration == cost.PLACEHOLDER_DURATION_MS and "PLACEHOLDER" in basis and threads is None


def test_lambda_compute_is_memory_times_billed_milliseconds():
    # 1024 MB x 5 ms (4.2 rounds up) x $0.0000166667 per GB-s x 1e6 calls
    assert cost.lambda_compute(1024, 4.2, "x86_64") == pytest.approx(1.0 * 0.005 * 0.0000166667 * 1e6)
    assert cost.lambda_compute(2048, 10, "arm64") == pytest.approx(2.0 * 0.010 * 0.0000133334 * 1e6)


def test_json_shape_has_every_front_door_with_total_metering_and_items(bench, capsys):
    assert cost.main(["--json", "--bench", str(bench)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data["per_million_calls"]) == set(cost.FRONT_DOORS) == {"rest", "function_url"}
    for door in data["per_million_calls"].values():
        assert set(door) == {"total", "metering", "items"}
        assert all(isinstance(v, float | int) and v >= 0 and not math.isnan(v) for v in door["items"].values())
        assert door["total"] == pytest.approx(sum(door["items"].values()), abs=1e-3)
        metering = sum(v for k, v in door["items"].items() if k.startswith("Metering:"))
        assert door["metering"] == pytest.approx(metering, abs=1e-3)


def test_every_per_call_charge_is_itemised(doors):
    for door, figures in doors.items():
        items = " ".join(figures["items"])
        for charge in ("Lambda requests", "Lambda compute", "Metering: usage event", "Logs:", "X-Ray", "transfer"):
            assert charge in items, (door, charge)
    assert doors["rest"]["items"]["API Gateway REST requests"] == 3.50
    assert doors["function_url"]["items"]["Function URL requests"] == 0.0


def test_metering_prices_one_event_write_leases_and_batched_aggregation():
    lines = {ln.item: ln.usd for ln in cost.metering_lines(load_config())}
    wru = 0.625
    assert lines["Metering: usage event PutItem"] == pytest.approx(1 * wru)
    assert lines["Metering: quota lease UpdateItem"] == pytest.approx(wru / cost.CALLS_PER_LEASE)
    assert lines["Metering: aggregation transaction"] == pytest.approx(3 * 2 * wru / cost.AGGREGATION_BATCH)
    assert lines["Metering: aggregator Lambda requests"] == pytest.approx(0.20 / cost.AGGREGATION_BATCH)
    assert not any("read" in item.lower() for item in lines)  # no quota read per call


def test_metering_is_within_its_target(doors):
    for door in doors.values():
        assert door["metering"] <= METERING_TARGET


def test_rest_total_is_within_its_target(doors):
    assert doors["rest"]["total"] <= REST_TARGET


def test_the_cheapest_front_door_is_within_its_target(doors):
    assert min(door["total"] for door in doors.values()) <= CHEAPEST_TARGET
    assert doors["function_url"]["total"] < doors["rest"]["total"]


def test_xray_sampling_follows_the_configured_rule():
    config = load_config()
    assert cost.traced_fraction(1_000_000) == 1.0  # X-Ray's default rule: 0.38 calls/s all in the 1/s reservoir
    rate = 100_000_000 / (730 * 3600)
    assert cost.traced_fraction(100_000_000) == pytest.approx((1 + 0.05 * (rate - 1)) / rate)
    assert cost.traced_fraction(10_000_000, 0, 0.001) == pytest.approx(0.001)
    lines = {ln.item: ln.usd for ln in cost.per_million(config, 4.2, "measured")}
    assert lines["X-Ray traces"] == pytest.approx(config.tracing_rate * 5.00)
    untraced = config.model_copy(update={"tracing": False})
    assert "X-Ray traces" not in {ln.item for ln in cost.per_million(untraced, 4.2, "measured")}


def test_an_uncached_authorizer_is_priced_on_every_call():
    uncached = load_config().model_copy(update={"authorizer_cache": False})
    lines = {ln.item: ln.usd for ln in cost.per_million(uncached, 4.2, "measured")}
    assert lines["Authorizer Lambda requests"] == 0.20
    assert lines["Authorizer DynamoDB reads"] == pytest.approx(0.125)


def test_logs_are_the_access_line_and_the_emf_line_only():
    rest = {ln.item: ln.usd for ln in cost.per_million(load_config(), 4.2, "measured")}
    url = {ln.item: ln.usd for ln in cost.per_million(load_config(), 4.2, "measured", front_door="function_url")}
    assert rest["Logs: access log line"] == pytest.approx(cost.representative_access_log_bytes() * 1e6 / 1024**3 * 0.5)
    assert "Logs: access log line" not in url
    assert url["Logs: function EMF metrics line"] == rest["Logs: function EMF metrics line"]


def test_idle_cost_is_zero_for_a_gpu_at_minimum_zero_and_priced_at_minimum_one():
    idle = {ln.item: ln.usd for ln in cost.idle_monthly(load_config())}
    assert idle["SageMaker all-minilm-l6-v2-fp32"] == 0.0
    assert idle["CloudWatch dashboard"] == 3.00
    warm = load_config({"maas:gpuMinCapacity": "1"})
    idle_warm = {ln.item: ln.usd for ln in cost.idle_monthly(warm)}
    assert idle_warm["SageMaker all-minilm-l6-v2-fp32"] == pytest.approx(1.408 * 730)


def test_report_is_markdown_with_a_table_per_front_door_from_the_json_numbers(bench):
    text = cost.report(load_config(), bench)
    # idle, each front door, failed events, each batch engine
    assert text.count("| **total** |") == 2 + len(cost.FRONT_DOORS) + len(cost.BATCH_ENGINE_TITLES)
    assert "measured handler p50 4.20 ms" in text and "Upper bound if the handler scales with CPU share" in text
    for door, figures in cost.as_json(load_config(), bench)["per_million_calls"].items():
        assert f"(`{door}`" in text and f"**{figures['total']:.2f}**" in text


def test_failed_batch_events_are_priced_apart_and_cost_nothing_per_call():
    """The failure handler (maas.jobs.failures) runs per failed batch event only: priced per million such events,
    and no line of the per-call tables names it."""
    lines = cost.failed_event_lines(load_config())
    assert {ln.item for ln in lines} >= {"SQS requests", "Lambda requests", "Lambda compute", "DynamoDB job update"}
    assert sum(ln.usd for ln in lines) == pytest.approx(
        4 * 0.40 + 0.20 + cost.lambda_compute(256, 50, "x86_64") + 0.625 + cost.logs_usd(426)
    )
    per_call = cost.per_million_calls(load_config(), 5.0, "test")
    assert not any("fail" in ln.item.lower() for lines in per_call.values() for ln in lines)
    assert "Per million failed batch events" in cost.report(load_config())


# ---------------------------------------------------------------------------------------------- batch engines


def test_batch_json_has_each_engine_with_total_metering_items_and_its_sizes(bench, capsys):
    assert cost.main(["--json", "--bench", str(bench)]) == 0
    data = json.loads(capsys.readouterr().out)
    engines = data["batch_per_million_lines"]
    assert set(engines) == {"batch_api", "jobs"}
    for engine in engines.values():
        assert all(isinstance(v, float | int) and v >= 0 and not math.isnan(v) for v in engine["items"].values())
        assert engine["total"] == pytest.approx(sum(engine["items"].values()), abs=1e-3)
        metering = sum(v for k, v in engine["items"].items() if k.startswith("Metering:"))
        assert engine["metering"] == pytest.approx(metering, abs=1e-3)
    assert engines["batch_api"]["part_lines"] == 100 and engines["jobs"]["part_lines"] == 5000
    assert data["basis"]["batch_line_ms"] == pytest.approx(1000 / 191.4, abs=1e-3)


def test_every_per_part_and_per_job_charge_of_a_batch_is_itemised():
    for engine in cost.BATCH_ENGINE_TITLES:
        items = " ".join(ln.item for ln in cost.batch_lines(load_config(), engine))
        for charge in (
            "Lambda compute",
            "Lambda requests",
            "S3 GET per part",
            "S3 PUT per part",
            "DynamoDB cursor advance per part",
            "Metering: usage event PutItem per part",
            "S3 requests per job",
            "DynamoDB job item per job",
            "SQS continuations",
            "Logs:",
            "X-Ray",
            "Data transfer out",
        ):
            assert charge in items, (engine, charge)


def test_batch_api_parts_are_priced_from_their_calls():
    """100-line parts: 10,000 parts per million lines, each 2 PUTs, 3 GETs, 1 read, 1 write and one usage event."""
    lines = {ln.item: ln.usd for ln in cost.batch_lines(load_config(), "batch_api", 10_000)}
    assert lines["S3 PUT per part"] == pytest.approx(10_000 * 2 * 5.00 / 1e6)
    assert lines["S3 GET per part"] == pytest.approx(10_000 * 3 * 0.40 / 1e6)
    assert lines["DynamoDB job reads per part"] == pytest.approx(10_000 * 0.125 / 1e6)
    assert lines["DynamoDB cursor advance per part"] == pytest.approx(10_000 * 0.625 / 1e6)
    assert lines["Metering: usage event PutItem per part"] == pytest.approx(10_000 * 0.625 / 1e6)
    assert lines["Lambda compute"] == pytest.approx(1.0 * cost.BATCH_LINE_MS / 1000 * 0.0000166667 * 1e6)
    assert lines["SQS continuations"] == 0.0  # 10,000 lines fit in the S3 worker's one invocation
    out = cost.batch_output_line_bytes("batch_api")
    assert lines["Data transfer out"] == pytest.approx(out * 1e6 / 1024**3 * 0.09)


def test_long_jobs_pay_continuations_and_larger_parts_cost_less_per_line():
    config = load_config()
    # 1 M lines at 5.22 ms: the S3 worker does (900 - 10) s of them, each SQS continuation (120 - 10) s
    per_line = cost.BATCH_LINE_MS + (2 * cost.S3_CALL_MS + 2 * cost.DDB_CALL_MS) / 5000
    expected = math.ceil((1_000_000 - 890_000 / per_line) / (110_000 / per_line))
    assert cost.continuations_per_job(config, 1_000_000, per_line) == expected > 0
    lines = {ln.item: ln.usd for ln in cost.batch_lines(config, "jobs", 1_000_000)}
    assert lines["SQS continuations"] == pytest.approx(expected * 3 * 0.40 / 1e6)
    assert lines["Lambda requests"] == pytest.approx((1 + expected) * 0.20 / 1e6)
    small = sum(ln.usd for ln in cost.batch_lines(config, "batch_api", 10_000) if "per part" in ln.item)
    large = sum(ln.usd for ln in cost.batch_lines(config, "jobs", 10_000) if "per part" in ln.item)
    assert large < small / 10  # 5,000-line parts vs 100-line parts


def test_a_batch_line_costs_a_fraction_of_a_synchronous_call(doors):
    """The per-call overhead (gateway, authorizer, one usage event per call) is what a batch line avoids."""
    for engine in cost.BATCH_ENGINE_TITLES:
        total = sum(ln.usd for ln in cost.batch_lines(load_config(), engine))
        assert total < doors["rest"]["total"] / 5 and total < doors["function_url"]["total"] / 2
    assert "Per million input lines of POST /v1/batches" in cost.report(load_config())


def test_the_batch_model_agrees_with_the_engines_constants():
    from maas.jobs import batch_run, files, worker
    from maas.settings.names import DEFAULT_CHUNK_LINES

    assert cost.BATCH_API_PART_LINES == batch_run.BATCH_PART_LINES
    assert cost.BATCH_RESERVE_MS == worker.RESERVE_MS == batch_run.RESERVE_MS
    assert cost.ASSEMBLY_PART_BYTES == files.ASSEMBLY_PART_BYTES
    assert cost.batch_calls("jobs").part_lines == DEFAULT_CHUNK_LINES


# The counts above, checked against the calls the engines make: one batch of 1 part and one of 3 parts through the
# real worker on the emulator, every S3 and DynamoDB call counted; the difference is two parts' calls.


class Calls:
    """Every AWS call made through the given boto3 clients: (service, operation, table) -> count."""

    def __init__(self, *clients):
        self.counts = Counter()
        for client in clients:
            client.meta.events.register("before-parameter-build", self._seen)

    def _seen(self, model, params, **_):
        self.counts[(model.service_model.service_name, model.name, params.get("TableName", ""))] += 1

    def take(self) -> Counter:
        counts, self.counts = self.counts, Counter()
        return counts


@pytest.fixture
def counted(aws, model_dir):
    from maas.inference.embedder import TextEmbedder
    from maas.inference.package import read_manifest
    from maas.jobs.store import JobStore
    from maas.jobs.worker import BatchWorker
    from maas.metering.charge import Billing
    from maas.metering.store import Meter
    from maas.tables import API_KEYS, JOBS, TENANTS, USAGE, create_table_kwargs
    from maas.tenancy.plans import default_plans
    from maas.tenancy.store import TenantStore

    ddb, s3 = aws.client("dynamodb"), aws.client("s3")
    bucket, usage = f"cost-{uuid.uuid4().hex[:10]}", f"usage-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    ddb.create_table(**create_table_kwargs(USAGE, name=usage))
    tenants = TenantStore(ddb, TENANTS.local_name, API_KEYS.local_name)
    embedder = TextEmbedder(model_dir, read_manifest(model_dir), threads=2)
    worker = BatchWorker(
        embedder=embedder,
        manifest=embedder.manifest,
        billing=Billing(Meter(ddb, usage), default_plans()),
        jobs=JobStore(ddb, JOBS.local_name),
        tenants=tenants,
        s3=s3,
        chunk_lines=10,
    )
    yield {
        "worker": worker,
        "tenant": tenants.create_tenant("Cost Co", "pro"),
        "bucket": bucket,
        "calls": Calls(ddb, s3),
        "tables": {"jobs": JOBS.local_name, "tenants": TENANTS.local_name, "usage": usage},
    }
    ddb.delete_table(TableName=usage)


def _worker_calls(env, engine: str, lines: int) -> Counter:
    from maas.jobs import store as j
    from maas.jobs.batches import BatchesService, job_id_of
    from maas.jobs.files import FileStore
    from maas.tenancy.store import Caller
    from maas.tools.local.batch import event_for_object
    from maas.tools.local.functions import LambdaContext

    worker, tenant_id = env["worker"], env["tenant"].tenant_id
    texts = [f"a line to embed, number {i}" for i in range(lines)]
    if engine == "batch_api":
        files = FileStore(worker.s3, env["bucket"])
        body = [
            {"custom_id": f"c{i}", "method": "POST", "url": "/v1/embeddings", "body": {"input": t}}
            for i, t in enumerate(texts)
        ]
        source = files.put(tenant_id, "in.jsonl", "batch", "".join(json.dumps(x) + "\n" for x in body).encode())
        service = BatchesService(worker.jobs, files)
        job_id = job_id_of(
            service.create(Caller(tenant_id, "pro", "maas_cost0000"), source.id, "/v1/embeddings", None)["id"]
        )
    else:
        job_id = j.new_job_id()
        worker.jobs.create(tenant_id, job_id, worker.manifest.name, "jsonl", "base64", key_prefix="maas_cost0000")
        data = "".join(json.dumps({"text": t}) + "\n" for t in texts).encode()
        worker.s3.put_object(Bucket=env["bucket"], Key=j.input_key(tenant_id, job_id, "jsonl"), Body=data)
    event = event_for_object(worker.s3, env["bucket"], j.input_key(tenant_id, job_id, "jsonl"))
    env["calls"].take()
    outcome = worker.handle_s3_event(event, LambdaContext(timeout_s=900))
    assert [x["status"] for x in outcome["jobs"]] == ["completed"]
    tables = {v: k for k, v in env["tables"].items()}
    return Counter(
        {(service, op, tables.get(table, table)): n for (service, op, table), n in env["calls"].take().items()}
    )


@pytest.mark.parametrize("engine", ["batch_api", "jobs"])
def test_the_counted_calls_are_the_calls_the_engine_makes(counted, engine):
    part = cost.BATCH_API_PART_LINES if engine == "batch_api" else counted["worker"].chunk_lines
    one, three = _worker_calls(counted, engine, part), _worker_calls(counted, engine, 3 * part)
    per_part = {k: (three[k] - one[k]) / 2 for k in set(one) | set(three) if three[k] != one[k]}
    model = cost.batch_calls(engine)
    quota = ("dynamodb", "UpdateItem", "usage")  # lease grants: ~one per 5 s of a container's traffic, not per part
    per_part.pop(quota, None)
    assert per_part == {
        ("s3", "GetObject", ""): model.part_s3_gets,
        ("s3", "PutObject", ""): model.part_s3_puts,
        **({("dynamodb", "GetItem", "jobs"): model.part_rru} if model.part_rru else {}),
        ("dynamodb", "UpdateItem", "jobs"): model.part_wru,
        ("dynamodb", "PutItem", "usage"): cost.USAGE_EVENT_WRU,
    }
    # per job, the worker's share of the model's counts (the rest is the client's: create, upload, polls, download)
    fixed = Counter({k: n - per_part.get(k, 0) for k, n in one.items() if k != quota})
    if engine == "batch_api":
        assert fixed[("s3", "GetObject", "")] == 1  # the validation read
        assert fixed[("s3", "PutObject", "")] == model.assembled_files  # the output file (no error lines)
        assert (
            fixed[("dynamodb", "GetItem", "jobs")] + fixed[("dynamodb", "GetItem", "tenants")]
            == model.job_rru - cost.BATCH_POLLS
        )
        assert fixed[("dynamodb", "UpdateItem", "jobs")] == model.job_wru - 1  # all but the create's PutItem
    else:
        assert fixed[("s3", "PutObject", "")] == 1  # the manifest
        assert (
            fixed[("dynamodb", "GetItem", "jobs")] + fixed[("dynamodb", "GetItem", "tenants")]
            == model.job_rru - cost.BATCH_POLLS
        )
        assert fixed[("dynamodb", "UpdateItem", "jobs")] == model.job_wru - 1
