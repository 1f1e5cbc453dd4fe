"""The per-request limits: inputs per encoding (Lambda's 6 MB response) and the token budget (API Gateway's 29 s),
on every text route, checked before the model runs and never billed."""

from __future__ import annotations

import json
import time
import uuid

import numpy as np
import pytest

from maas.inference.embedder import encode_vectors
from maas.metering.store import Meter
from maas.settings import names as c
from maas.settings.functions import EmbeddingsSettings
from maas.settings.mixins import token_budget
from maas.tables import USAGE
from maas.tools import paths
from maas.tools.local.apigw import make_event
from maas.tools.local.functions import LambdaContext, load_handler
from tests.client import Client, assert_error, assert_kserve_error
from tests.conftest import function_env

BUDGET = 600  # tokens, MAAS_MAX_REQUEST_TOKENS of the handlers below: small, so a refusal needs no big request
LONG = "refund " * 300  # truncated at the model's 256 tokens


def tenant():
    name = f"t-{uuid.uuid4().hex[:10]}"
    return name, {"principalId": name, "tenant_id": name, "plan": "pro", "key_prefix": "maas_budget00"}


@pytest.fixture(scope="module")
def handlers(aws, model_dir):
    env = {**function_env(aws, model_dir), c.ENV_MAX_REQUEST_TOKENS: str(BUDGET)}
    classifier = paths.model_dir(c.DEFAULT_CLASSIFIER)
    return {
        "embeddings": load_handler("embeddings", env),
        "rerank": load_handler("rerank", env),
        "classify": load_handler("classify", {**env, "MAAS_CLASSIFIER_SOURCES": str(classifier)}),
        "v2": load_handler("v2", env),
    }


def _v2_body(rows: int, width: int) -> dict:
    ids = np.full((rows, width), 2000, dtype=np.int64)
    ids[:, 0], ids[:, -1] = 101, 102
    tensor = lambda name, a: {"name": name, "datatype": "INT64", "shape": list(a.shape), "data": a.ravel().tolist()}  # noqa: E731
    return {"inputs": [tensor("input_ids", ids), tensor("attention_mask", np.ones_like(ids))]}


# route, path, a body within the budget, one over it, what the message counts
CASES = [
    ("embeddings", "/v1/embeddings", {"input": [LONG, LONG]}, {"input": [LONG, LONG, LONG]}, "3 inputs"),
    (
        "rerank",
        "/v1/rerank",
        {"query": "refund", "documents": [LONG, LONG]},
        {"query": "refund", "documents": [LONG, LONG, LONG]},
        "the query and 3 documents",
    ),
    ("classify", "/v1/classify", {"inputs": [LONG, LONG]}, {"inputs": [LONG, LONG, LONG]}, "3 inputs"),
    ("v2", "/v2/models/all-minilm-l6-v2/infer", _v2_body(2, 256), _v2_body(3, 256), "3 rows x 256 positions"),
]


@pytest.mark.parametrize("function,path,within,over,counted", CASES, ids=[c[0] for c in CASES])
def test_a_request_over_the_token_budget_is_413_before_the_model_runs_and_not_billed(
    handlers, aws, function, path, within, over, counted
):
    # GIVEN a function whose budget is BUDGET tokens and a fresh tenant
    name, auth = tenant()
    client = Client(handlers[function], authorizer=auth)
    meter = Meter(aws.client("dynamodb"), USAGE.local_name)
    start = time.time() - 1
    # WHEN it sends a request within the budget, then one over it
    assert client.post(path, json=within).status == 200
    resp = client.post(path, json=over)
    # THEN the second is a 413 that names the budget and what it counted, in the route's error shape
    check = assert_kserve_error if function == "v2" else assert_error
    check(resp, 413, "token_budget_exceeded", message=f"the budget per request is {BUDGET} tokens")
    message = resp.json["error"] if function == "v2" else resp.json["error"]["message"]
    assert counted in message and "29 s" in message
    # AND only the first is billed
    assert len(meter.events(name, start, time.time() + 1)) == 1


def test_the_default_budget_follows_the_functions_memory():
    # 1 vCPU at 1,769 MB, pro rata: the 1,024 MB task functions get 0.58 of TOKENS_PER_VCPU_SECOND for 14.5 s
    assert token_budget(1024) == int(c.TOKENS_PER_VCPU_SECOND * 1024 / 1769 * 14.5) // 1000 * 1000
    assert token_budget(1769) == int(c.TOKENS_PER_VCPU_SECOND * 14.5) // 1000 * 1000
    assert token_budget(2048) > token_budget(1024)
    settings = EmbeddingsSettings.from_env({"MAAS_METERING": "off", c.ENV_LAMBDA_MEMORY_MB: "2048"})
    assert settings.request_token_budget == token_budget(2048)
    explicit = {"MAAS_METERING": "off", c.ENV_MAX_REQUEST_TOKENS: "5000", c.ENV_LAMBDA_MEMORY_MB: "2048"}
    assert EmbeddingsSettings.from_env(explicit).request_token_budget == 5000


def test_the_largest_base64_and_float_responses_fit_lambdas_6_mb_and_the_next_encoding_limit_does_not():
    # Worst case per number: 12 characters ("-0.123456789") at the 9 decimals /v1/embeddings writes.
    worst = np.full((c.MAX_FLOAT_INPUTS, 384), -0.123456789, dtype=np.float32)

    def response_bytes(vectors, encoding):
        data = [
            {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(encode_vectors(vectors, encoding))
        ]
        body = json.dumps(
            {"object": "list", "data": data, "model": "all-minilm-l6-v2", "usage": {}}, separators=(",", ":")
        )
        # the Lambda response payload is the proxy result, whose body is a JSON string (its quotes escaped)
        return len(json.dumps({"statusCode": 200, "headers": {}, "body": body}))

    assert response_bytes(worst, "float") < c.LAMBDA_RESPONSE_BYTES < response_bytes(np.vstack([worst, worst]), "float")
    assert response_bytes(np.vstack([worst, worst]), "base64") < c.LAMBDA_RESPONSE_BYTES


def test_inputs_per_request_depend_on_the_encoding(aws, model_dir):
    handler = load_handler("embeddings", {**function_env(aws, model_dir), "MAAS_METERING": "off"})
    client = Client(handler)
    texts = [f"ticket {i}" for i in range(c.DEFAULT_MAX_INPUTS)]
    # float: at most MAX_FLOAT_INPUTS (the default encoding); base64 (the SDKs' default): DEFAULT_MAX_INPUTS
    resp = client.post("/v1/embeddings", json={"input": texts[: c.MAX_FLOAT_INPUTS + 1]})
    assert_error(resp, 400, "too_many_inputs", message=f"maximum per request is {c.MAX_FLOAT_INPUTS}")
    resp = client.post("/v1/embeddings", json={"input": texts, "encoding_format": "base64"})
    assert resp.status == 200 and len(resp.json["data"]) == c.DEFAULT_MAX_INPUTS
    assert len(json.dumps(resp.result)) < c.LAMBDA_RESPONSE_BYTES
    resp = client.post("/v1/embeddings", json={"input": [*texts, "one more"], "encoding_format": "base64"})
    assert_error(resp, 400, "too_many_inputs", message=f"maximum per request is {c.DEFAULT_MAX_INPUTS}")
    event = make_event(
        "POST",
        "/v1/embeddings",
        headers={"Content-Type": "application/json"},
        body=json.dumps({"input": texts[: c.MAX_FLOAT_INPUTS]}).encode(),
    )
    result = handler(event, LambdaContext())
    assert result["statusCode"] == 200 and len(json.dumps(result)) < c.LAMBDA_RESPONSE_BYTES
