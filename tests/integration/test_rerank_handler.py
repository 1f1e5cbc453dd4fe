"""functions/rerank with the real int8 model: golden orderings, the Cohere/Jina shape, limits, billing."""

from __future__ import annotations

import json
import time
import uuid

import numpy as np
import pytest

from maas.metering.store import Meter, day_of, month_of
from maas.tables import USAGE
from maas.tools.local.apigw import make_event
from maas.tools.local.functions import LambdaContext, load_handler
from tests.conftest import function_env, load_event

AUTH = {"principalId": "t-rerank", "tenant_id": "t-rerank", "plan": "enterprise", "key_prefix": "maas_rerank00"}

# Golden set: for each query, the documents that answer it must outrank every distractor. The distractors share
# words with the query on purpose (password, refund, ship), so a bag-of-words scorer would not pass.
DOCUMENTS = [
    "To change your password, open Settings, choose Security and tap 'Reset password'.",  # 0 password
    "The password field on the signup form must not be left empty.",  # 1 distractor (password)
    "Refunds reach your card within five business days after we receive the returned item.",  # 2 refund
    "Our refund policy page was redesigned last spring.",  # 3 distractor (refund)
    "We ship to Canada and Mexico; delivery takes 3 to 7 days.",  # 4 shipping abroad
    "The cruise ship leaves the harbour at noon.",  # 5 distractor (ship)
    "Le paiement par carte bancaire est accepté.",  # 6 unrelated (French, payment)
]
GOLDEN = [
    ("I forgot my password, how can I reset it?", 0),
    ("When will I get my money back after returning an order?", 2),
    ("Do you deliver to other countries?", 4),
]


@pytest.fixture(scope="session")
def rerank_handler(aws, model_dir):
    return load_handler("rerank", function_env(aws, model_dir))


def _post(handler, body, raw: bytes | None = None, headers=None, authorizer=AUTH, request_id=None):
    event = make_event(
        "POST",
        "/v1/rerank",
        headers=headers or {"Content-Type": "application/json"},
        body=raw if raw is not None else json.dumps(body).encode(),
        authorizer=authorizer,
        request_id=request_id,
    )
    result = handler(event, LambdaContext())
    return result["statusCode"], json.loads(result["body"]), {k: v[0] for k, v in result["multiValueHeaders"].items()}


def _assert_error(status, body, expected, fragment):
    assert status == expected, body
    assert set(body) == {"error"} and {"message", "type", "code"} <= set(body["error"])
    assert fragment.lower() in body["error"]["message"].lower(), body["error"]["message"]


@pytest.mark.parametrize("query,best", GOLDEN)
def test_golden_orderings_relevant_document_first(rerank_handler, query, best):
    status, body, _ = _post(rerank_handler, {"query": query, "documents": DOCUMENTS})
    assert status == 200, body
    order = [r["index"] for r in body["results"]]
    assert order[0] == best, (query, body["results"])
    assert sorted(order) == list(range(len(DOCUMENTS)))
    scores = [r["relevance_score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)
    # the answer beats the best distractor by a clear margin (int8 vs fp32 moves scores by < 0.02)
    assert scores[0] - scores[1] > 0.05


def test_scores_are_cosines_of_the_embeddings(rerank_handler, model_dir):
    from maas.inference.embedder import TextEmbedder
    from maas.inference.package import read_manifest

    embedder = TextEmbedder(model_dir, read_manifest(model_dir))
    query = GOLDEN[0][0]
    vectors = embedder.embed([query, *DOCUMENTS]).vectors
    expected = vectors[1:] @ vectors[0]
    _, body, _ = _post(rerank_handler, {"query": query, "documents": DOCUMENTS})
    got = np.array([r["relevance_score"] for r in sorted(body["results"], key=lambda r: r["index"])])
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_top_n_return_documents_and_object_documents(rerank_handler):
    docs = [{"text": d} for d in DOCUMENTS]
    status, body, _ = _post(
        rerank_handler, {"query": GOLDEN[1][0], "documents": docs, "top_n": 2, "return_documents": True}
    )
    assert status == 200
    assert len(body["results"]) == 2 and body["model"] == "all-minilm-l6-v2"
    assert body["results"][0] == {
        "index": 2,
        "relevance_score": body["results"][0]["relevance_score"],
        "document": {"text": DOCUMENTS[2]},
    }
    _, plain, _ = _post(rerank_handler, {"query": GOLDEN[1][0], "documents": DOCUMENTS, "top_n": 50})
    assert len(plain["results"]) == len(DOCUMENTS)  # top_n above the count returns them all
    assert all("document" not in r for r in plain["results"])


def test_usage_counts_query_and_document_tokens(rerank_handler, model_dir):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    query, docs = "refund", ["money back", "a ship"]
    expected = sum(len(tok.encode(t).ids) for t in [query, *docs])
    _, body, _ = _post(rerank_handler, {"query": query, "documents": docs})
    assert body["usage"] == {"prompt_tokens": expected, "total_tokens": expected}


@pytest.mark.parametrize(
    "payload,raw,status,fragment",
    [
        (None, b"{not json", 400, "not valid JSON"),
        (None, b"", 400, ""),
        ({"documents": ["a"]}, None, 400, "missing required parameter: 'query'"),
        ({"query": "q"}, None, 400, "missing required parameter: 'documents'"),
        ({"query": "q", "documents": []}, None, 400, "empty list"),
        ({"query": "  ", "documents": ["a"]}, None, 400, "'query' is empty"),
        ({"query": "q", "documents": ["a", " "]}, None, 400, "'documents[1]' is empty"),
        ({"query": "q", "documents": ["a", 3]}, None, 400, "documents[1] must be a string"),
        ({"query": "q", "documents": [{"txt": "a"}]}, None, 400, "documents[0] must be a string or an object"),
        ({"query": "q", "documents": "a"}, None, 400, "'documents'"),
        ({"query": "q", "documents": ["a"], "top_n": 0}, None, 400, "top_n"),
        ({"query": "q", "documents": ["a"], "max_chunks_per_doc": 2}, None, 400, "unsupported parameter"),
        ({"query": "q", "documents": ["a"], "model": "rerank-v3"}, None, 404, "'rerank-v3' does not exist"),
        ({"query": "q", "documents": ["a"], "model": "all-minilm-l6-v2@9"}, None, 404, "does not exist"),
        ({"query": "q", "documents": ["a"], "model": "ticket-intents"}, None, 404, "not served by this endpoint"),
        ({"query": "q", "documents": ["d"] * 1001}, None, 400, "maximum per request is 1000"),
        ({"query": "q", "documents": ["a" * (2 * 1024 * 1024)]}, None, 413, "exceeds the"),
    ],
)
def test_bad_input_gets_a_4xx_in_the_error_shape(rerank_handler, payload, raw, status, fragment):
    _assert_error(*_post(rerank_handler, payload, raw=raw)[:2], status, fragment)


def test_wrong_content_type_method_and_route(rerank_handler):
    _assert_error(*_post(rerank_handler, None, raw=b"x", headers={"Content-Type": "text/plain"})[:2], 415, "JSON")
    result = rerank_handler(make_event("GET", "/v1/rerank"), LambdaContext())
    assert result["statusCode"] == 405 and result["multiValueHeaders"]["Allow"] == ["POST"]
    assert rerank_handler(make_event("GET", "/v1/nothing"), LambdaContext())["statusCode"] == 404


def test_model_pins_and_aliases_resolve(rerank_handler):
    for model in ["all-minilm-l6-v2@1", "ALL-MINILM-L6-V2@latest", "sentence-transformers/all-MiniLM-L6-v2"]:
        assert _post(rerank_handler, {"query": "q", "documents": ["a"], "model": model})[0] == 200


def test_billed_once_as_rerank_with_quota_headers(rerank_handler, aws):
    meter = Meter(aws.client("dynamodb"), USAGE.local_name)
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    auth = {**AUTH, "principalId": tenant, "tenant_id": tenant, "plan": "pro"}
    start = time.time() - 1
    request_id = str(uuid.uuid4())
    first = _post(rerank_handler, {"query": "q", "documents": ["a", "b"]}, authorizer=auth, request_id=request_id)
    again = _post(rerank_handler, {"query": "q", "documents": ["a", "b"]}, authorizer=auth, request_id=request_id)
    assert first[0] == again[0] == 200
    [event] = meter.events(tenant, start, time.time() + 1)
    assert (event.model, event.version, event.task) == ("all-minilm-l6-v2", "1", "rerank")
    assert event.units == first[1]["usage"]["total_tokens"]
    assert "X-Quota-Remaining" in first[2]
    assert _post(rerank_handler, {"query": "q", "documents": []}, authorizer=auth)[0] == 400
    today = day_of(time.time())
    assert meter.failures(tenant, today, today)[0]["status_4xx"] == 1
    assert meter.monthly(tenant, month_of(time.time()))[0]["requests"] == 1


def test_unauthenticated_is_401(rerank_handler):
    _assert_error(*_post(rerank_handler, {"query": "q", "documents": ["a"]}, authorizer=None)[:2], 401, "API key")


def test_sample_events(rerank_handler):
    for name, status in [
        ("rerank-post.json", 200),
        ("rerank-post-objects.json", 200),
        ("rerank-post-invalid.json", 400),
        ("rerank-post-unknown-model.json", 404),
    ]:
        result = rerank_handler(load_event(name), LambdaContext())
        assert result["statusCode"] == status, (name, result["body"])
    body = json.loads(rerank_handler(load_event("rerank-post.json"), LambdaContext())["body"])
    assert body["results"][0]["index"] == 0 and len(body["results"]) == 2


def test_missing_model_is_503(tmp_path):
    handler = load_handler("rerank", {"MAAS_MODEL_SOURCE": str(tmp_path / "absent"), "MAAS_METERING": "off"})
    _assert_error(*_post(handler, {"query": "q", "documents": ["a"]})[:2], 503, "unavailable")
