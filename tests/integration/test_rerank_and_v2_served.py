"""Rerank and v2 through `maas serve`: real HTTP, the real authorizer and gateway, metering on the emulator."""

from __future__ import annotations

import pytest
import requests


@pytest.fixture(scope="module")
def served(model_dir):
    from maas.tools.local.server import start

    running = start(port=0, model_dir=model_dir)
    yield running
    running.stop()


def test_rerank_over_http_needs_a_key_and_ranks(served):
    url, key = served.base_url, served.demo_key
    body = {"query": "reset my password", "documents": ["Opening hours", "Reset your password in Settings"]}
    assert requests.post(f"{url}/v1/rerank", json=body, timeout=30).status_code == 401
    r = requests.post(f"{url}/v1/rerank", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert r.status_code == 200, r.text
    assert [x["index"] for x in r.json()["results"]] == [1, 0]
    assert "X-Quota-Remaining" in r.headers


def test_v2_over_http(served):
    url, headers = served.base_url, {"Authorization": f"Bearer {served.demo_key}"}
    assert requests.get(f"{url}/v2/health/ready", timeout=30).json() == {"ready": True}  # public, like a probe
    assert requests.get(f"{url}/v2/models/all-minilm-l6-v2", timeout=30).status_code == 401
    meta = requests.get(f"{url}/v2/models/all-minilm-l6-v2", headers=headers, timeout=30).json()
    assert meta["outputs"][0]["name"] == "sentence_embedding"
    tensor = {"datatype": "INT64", "shape": [1, 3]}
    infer = {
        "inputs": [
            {"name": "input_ids", **tensor, "data": [101, 7592, 102]},
            {"name": "attention_mask", **tensor, "data": [1, 1, 1]},
        ]
    }
    r = requests.post(f"{url}/v2/models/all-minilm-l6-v2/infer", json=infer, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["shape"] == [1, 384]
