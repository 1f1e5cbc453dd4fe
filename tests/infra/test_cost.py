"""The cost report: itemised, reproducible from the configuration and the benchmark's JSON."""

from __future__ import annotations

import json
import math

import pytest

from infra import cost
from infra.config import load_config


@pytest.fixture
def bench(tmp_path):
    path = tmp_path / "embeddings.json"
    path.write_text(json.dumps({"date": "d", "settings": {"threads": 2}, "summary": {"handler": {"p50_ms": 4.2}}}))
    return path


def test_measured_duration_is_used_when_the_benchmark_exists(bench, tmp_path):
    assert cost.bench_duration_ms(bench)[0] == 4.2
    duration, basis, threads = cost.bench_duration_ms(tmp_path / "absent.json")
    assert duration == cost.PLACEHOLDER_DURATION_MS and "PLACEHOLDER" in basis and threads is None


def test_lambda_compute_is_memory_times_billed_milliseconds():
    # 1024 MB x 5 ms (4.2 rounds up) x $0.0000166667 per GB-s x 1e6 calls
    assert cost.lambda_compute(1024, 4.2, "x86_64") == pytest.approx(1.0 * 0.005 * 0.0000166667 * 1e6)
    assert cost.lambda_compute(2048, 10, "arm64") == pytest.approx(2.0 * 0.010 * 0.0000133334 * 1e6)


def test_per_million_lines_are_itemised_and_metering_follows_the_transaction(bench):
    config = load_config()
    lines = {ln.item: ln for ln in cost.per_million(config, 4.2, "measured")}
    assert lines["API Gateway REST requests"].usd == 3.50
    assert lines["embeddings Lambda requests"].usd == 0.20
    assert lines["Metering DynamoDB writes"].usd == pytest.approx((3 * 2 + 1) * 0.625)
    assert lines["Authorizer DynamoDB reads"].usd == pytest.approx(0.125)
    assert lines["Quota precheck DynamoDB read"].usd == pytest.approx(0.125)
    log_bytes = cost.representative_access_log_bytes() + cost.TASK_LOG_BYTES + cost.AUTHORIZER_LOG_BYTES
    assert lines["CloudWatch Logs ingestion"].usd == pytest.approx(log_bytes * 1e6 / 1024**3 * 0.50)
    assert all(ln.usd >= 0 and not math.isnan(ln.usd) for ln in lines.values())


def test_idle_cost_is_zero_for_a_gpu_at_minimum_zero_and_priced_at_minimum_one(tmp_path):
    idle = {ln.item: ln.usd for ln in cost.idle_monthly(load_config())}
    assert idle["SageMaker all-minilm-l6-v2-fp32"] == 0.0
    assert idle["CloudWatch dashboard"] == 3.00
    warm = load_config({"maas:gpuMinCapacity": "1"})
    idle_warm = {ln.item: ln.usd for ln in cost.idle_monthly(warm)}
    assert idle_warm["SageMaker all-minilm-l6-v2-fp32"] == pytest.approx(1.408 * 730)


def test_xray_sampling_follows_the_default_rule():
    assert cost.traced_fraction(1_000_000) == 1.0  # 0.38 calls/s: the 1/s reservoir takes every call
    rate = 100_000_000 / (730 * 3600)
    assert cost.traced_fraction(100_000_000) == pytest.approx((1 + 0.05 * (rate - 1)) / rate)
    untraced = load_config().model_copy(update={"tracing": False})
    assert "X-Ray traces" not in {ln.item for ln in cost.per_million(untraced, 4.2, "measured")}


def test_report_is_markdown_with_totals(bench):
    text = cost.report(load_config(), bench)
    assert "| **total** |" in text and "measured handler p50 4.20 ms" in text
    assert "Upper bound if the handler scales with CPU share" in text


def test_cli_prints_the_report(bench, capsys):
    assert cost.main(["--bench", str(bench)]) == 0
    assert "Per million POST /v1/embeddings calls" in capsys.readouterr().out
