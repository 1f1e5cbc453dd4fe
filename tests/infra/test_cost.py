"""The cost report: itemised, reproducible from the configuration and the benchmark's JSON, and within the targets.

The targets are arithmetic checks on the model (issue 12): metering <= $0.70 per million calls; all-in <= $5 per
million single-input base64 calls behind the REST API and <= $2 behind the cheapest front door.
"""

from __future__ import annotations

import json
import math

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
    assert text.count("| **total** |") == 2 + len(cost.FRONT_DOORS)  # idle, each front door, failed events
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
