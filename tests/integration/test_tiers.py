"""The embedding tiers (exact, fast, static) through one embeddings handler, as the stack deploys them: `model`
names the tier; golden/fidelity checks per tier, billing per tier, the /v1/models cards with measured quality."""

from __future__ import annotations

import json
import time
import uuid

import numpy as np
import pytest

from maas.inference.package import read_manifest
from maas.metering.store import Meter
from maas.settings.names import ENV_MODEL_SOURCE
from maas.tables import USAGE
from maas.tools import paths
from maas.tools.local.apigw import make_event
from maas.tools.local.functions import LambdaContext, load_handler
from tests.conftest import function_env

FAST, STATIC = "all-minilm-l6-v2-fast", "all-minilm-l6-v2-static"


def _built(name: str):
    folder = paths.model_dir(name)
    if not (folder / "manifest.json").is_file():
        from maas.tools.build import build_package

        build_package(name, folder, compare=False, quiet=True)
    return folder


@pytest.fixture(scope="module")
def tiers_handler(aws, model_dir):
    source = ",".join(str(f) for f in (model_dir, _built(FAST), _built(STATIC)))
    return load_handler("embeddings", {**function_env(aws, model_dir), ENV_MODEL_SOURCE: source})


def _auth():
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    return {"principalId": tenant, "tenant_id": tenant, "plan": "pro", "key_prefix": "maas_tiers000"}


def _call(handler, method, path, body=None, auth=None):
    event = make_event(
        method,
        path,
        headers={"Content-Type": "application/json"},
        body=None if body is None else json.dumps(body).encode(),
        authorizer=auth or _auth(),
    )
    result = handler(event, LambdaContext())
    return result["statusCode"], json.loads(result["body"])


def _embed(handler, model, texts, auth=None):
    status, body = _call(handler, "POST", "/v1/embeddings", {"model": model, "input": texts}, auth)
    assert status == 200, body
    assert body["model"] == model
    return np.array([d["embedding"] for d in body["data"]], dtype=np.float32), body


@pytest.mark.slow
def test_the_fast_tier_reproduces_the_golden_fp32_vectors(tiers_handler, golden):
    vectors, _ = _embed(tiers_handler, FAST, golden["sentences"])
    reference = np.array(golden["vectors"], dtype=np.float32)
    cos = (vectors * reference).sum(1) / np.linalg.norm(vectors, axis=1) / np.linalg.norm(reference, axis=1)
    assert vectors.shape == (len(golden["sentences"]), 384)
    assert cos.min() >= 0.98, cos.round(4).tolist()
    manifest = read_manifest(paths.model_dir(FAST))
    assert manifest.quality.min_cosine >= 0.98
    # int8 compute, not int8 storage: the graph holds onnxruntime's integer kernels
    ops = {n.op_type for n in __import__("onnx").load(str(paths.model_dir(FAST) / "model.onnx")).graph.node}
    assert {"DynamicQuantizeMatMul", "QAttention"} & ops or "MatMulInteger" in ops, ops


@pytest.mark.slow
def test_the_static_tier_embeds_in_its_own_space_and_ranks_like_the_exact_tier(tiers_handler):
    query = "How do I reset my password?"
    docs = [
        "I forgot my password and cannot log in to my account.",
        "The package arrived two days late.",
        "Recipe for a quick vegetarian lasagna",
        "Quarterly revenue grew by eight percent.",
    ]
    ranks = {}
    for model in ("all-minilm-l6-v2", STATIC):
        vectors, body = _embed(tiers_handler, model, [query, *docs])
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
        ranks[model] = list(np.argsort(-(vectors[1:] @ vectors[0])))
        assert body["usage"]["total_tokens"] > 0
    assert vectors.shape[1] == 256
    assert ranks[STATIC][0] == ranks["all-minilm-l6-v2"][0] == 0
    # the int8 graph agrees with its fp32 table (measured by the build)
    evaluation = read_manifest(paths.model_dir(STATIC)).evaluation
    assert evaluation["fp32_agreement"]["min_cosine"] >= 0.99


@pytest.mark.slow
def test_each_tier_is_billed_under_its_own_name(tiers_handler, aws, usage_stream):
    meter = Meter(aws.client("dynamodb"), USAGE.local_name)
    auth = _auth()
    start = time.time() - 1
    totals = {}
    for model in ("all-minilm-l6-v2", FAST, STATIC):
        _, body = _embed(tiers_handler, model, ["one two three", "four"], auth)
        totals[model] = body["usage"]["total_tokens"]
    events = meter.events(auth["tenant_id"], start, time.time() + 1)
    assert sorted((e.model, e.units) for e in events) == sorted(totals.items())
    # the static tokenizer adds no [CLS]/[SEP]: fewer tokens billed for the same text
    assert totals[STATIC] < totals["all-minilm-l6-v2"] == totals[FAST]


@pytest.mark.slow
def test_the_model_list_shows_every_tier_with_its_measured_quality(tiers_handler):
    status, body = _call(tiers_handler, "GET", "/v1/models")
    assert status == 200
    cards = {c["id"]: c for c in body["data"]}
    assert cards[FAST]["dimensions"] == 384 and cards[STATIC]["dimensions"] == 256
    assert cards[FAST]["quality"]["min_cosine"] >= 0.98
    assert cards["all-minilm-l6-v2"]["quality"]["min_cosine"] >= 0.99
    assert cards[STATIC]["quality"]["fp32_agreement"]["min_cosine"] >= 0.99
    status, body = _call(tiers_handler, "POST", "/v1/embeddings", {"model": "all-minilm-l6-v2-tiny", "input": "x"})
    assert status == 404 and body["error"]["code"] == "model_not_found"
