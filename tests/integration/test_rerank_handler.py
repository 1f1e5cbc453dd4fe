"""functions/rerank with the real int8 model: golden orderings, the Cohere/Jina shape, limits, billing."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pytest

from maas.metering.store import Meter, day_of, month_of
from maas.tables import USAGE
from maas.tools.local.functions import load_handler
from tests.client import Client, assert_error
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


@pytest.fixture(scope="session")
def rerank(rerank_handler) -> Client:
    return Client(rerank_handler, authorizer=AUTH)


def _post(client: Client, body, raw: bytes | None = None, **kwargs):
    """POST /v1/rerank with ``body`` as JSON, or ``raw`` bytes (sent as JSON unless headers say otherwise)."""
    return client.post("/v1/rerank", json=body if raw is None else None, body=raw, **kwargs)


@pytest.mark.parametrize("query,best", GOLDEN)
def test_golden_orderings_relevant_document_first(rerank, query, best):
    # WHEN a query is ranked against documents that share its words without answering it
    resp = _post(rerank, {"query": query, "documents": DOCUMENTS})
    # THEN the document that answers it comes first, every document once, scores descending
    assert resp.status == 200, resp.json
    body = resp.json
    order = [r["index"] for r in body["results"]]
    assert order[0] == best, (query, body["results"])
    assert sorted(order) == list(range(len(DOCUMENTS)))
    scores = [r["relevance_score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)
    # the answer beats the best distractor by a clear margin (int8 vs fp32 moves scores by < 0.02)
    assert scores[0] - scores[1] > 0.05


def test_scores_are_cosines_of_the_embeddings(rerank, model_dir):
    from maas.inference.embedder import TextEmbedder
    from maas.inference.package import read_manifest

    embedder = TextEmbedder(model_dir, read_manifest(model_dir))
    query = GOLDEN[0][0]
    vectors = embedder.embed([query, *DOCUMENTS]).vectors
    expected = vectors[1:] @ vectors[0]
    body = _post(rerank, {"query": query, "documents": DOCUMENTS}).json
    got = np.array([r["relevance_score"] for r in sorted(body["results"], key=lambda r: r["index"])])
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_top_n_return_documents_and_object_documents(rerank):
    docs = [{"text": d} for d in DOCUMENTS]
    resp = _post(rerank, {"query": GOLDEN[1][0], "documents": docs, "top_n": 2, "return_documents": True})
    assert resp.status == 200
    body = resp.json
    assert len(body["results"]) == 2 and body["model"] == "all-minilm-l6-v2"
    assert body["results"][0] == {
        "index": 2,
        "relevance_score": body["results"][0]["relevance_score"],
        "document": {"text": DOCUMENTS[2]},
    }
    plain = _post(rerank, {"query": GOLDEN[1][0], "documents": DOCUMENTS, "top_n": 50}).json
    assert len(plain["results"]) == len(DOCUMENTS)  # top_n above the count returns them all
    assert all("document" not in r for r in plain["results"])


def test_usage_counts_query_and_document_tokens(rerank, model_dir):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    query, docs = "refund", ["money back", "a ship"]
    expected = sum(len(tok.encode(t).ids) for t in [query, *docs])
    body = _post(rerank, {"query": query, "documents": docs}).json
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
def test_bad_input_gets_a_4xx_in_the_error_shape(rerank, payload, raw, status, fragment):
    assert_error(_post(rerank, payload, raw=raw), status, message=fragment)


def test_wrong_content_type_method_and_route(rerank):
    assert_error(_post(rerank, None, raw=b"x", headers={"Content-Type": "text/plain"}), 415, message="JSON")
    resp = rerank.get("/v1/rerank", authorizer=None)
    assert resp.status == 405 and resp.result["multiValueHeaders"]["Allow"] == ["POST"]
    assert rerank.get("/v1/nothing", authorizer=None).status == 404


def test_model_pins_and_aliases_resolve(rerank):
    for model in ["all-minilm-l6-v2@1", "ALL-MINILM-L6-V2@latest", "sentence-transformers/all-MiniLM-L6-v2"]:
        assert _post(rerank, {"query": "q", "documents": ["a"], "model": model}).status == 200


def test_billed_once_as_rerank_with_quota_headers(rerank, aws, usage_stream):
    # GIVEN a tenant no other test bills
    meter = Meter(aws.client("dynamodb"), USAGE.local_name)
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    auth = {**AUTH, "principalId": tenant, "tenant_id": tenant, "plan": "pro"}
    start = time.time() - 1
    request_id = str(uuid.uuid4())
    # WHEN the same request reaches the handler twice (a Lambda retry of one API Gateway request)
    first = _post(rerank, {"query": "q", "documents": ["a", "b"]}, authorizer=auth, request_id=request_id)
    again = _post(rerank, {"query": "q", "documents": ["a", "b"]}, authorizer=auth, request_id=request_id)
    # THEN both answer, one usage event records it as rerank, with the quota headers
    assert first.status == again.status == 200
    [event] = meter.events(tenant, start, time.time() + 1)
    assert (event.model, event.version, event.task) == ("all-minilm-l6-v2", "1", "rerank")
    assert event.units == first.json["usage"]["total_tokens"]
    assert "X-Quota-Remaining" in first.headers
    # AND a refused request is counted apart, not billed
    assert _post(rerank, {"query": "q", "documents": []}, authorizer=auth).status == 400
    today = day_of(time.time())
    usage_stream.drain()  # the aggregator catches up with the usage stream
    assert meter.failures(tenant, today, today)[0]["status_4xx"] == 1
    assert meter.monthly(tenant, month_of(time.time()))[0]["requests"] == 1


def test_unauthenticated_is_401(rerank):
    assert_error(_post(rerank, {"query": "q", "documents": ["a"]}, authorizer=None), 401, message="API key")


def test_sample_events(rerank):
    for name, status in [
        ("rerank-post.json", 200),
        ("rerank-post-objects.json", 200),
        ("rerank-post-invalid.json", 400),
        ("rerank-post-unknown-model.json", 404),
    ]:
        resp = rerank.invoke(load_event(name))
        assert resp.status == status, (name, resp.body)
    body = rerank.invoke(load_event("rerank-post.json")).json
    assert body["results"][0]["index"] == 0 and len(body["results"]) == 2


def test_missing_model_is_503(tmp_path):
    handler = load_handler("rerank", {"MAAS_MODEL_SOURCE": str(tmp_path / "absent"), "MAAS_METERING": "off"})
    assert_error(_post(Client(handler, AUTH), {"query": "q", "documents": ["a"]}), 503, message="unavailable")


def test_cohere_v2_rerank_keeps_the_api_error_shape_not_kserves(rerank):
    # GIVEN Cohere's /v2/rerank, which shares the /v2 prefix with KServe v2 but not its protocol
    # WHEN the body is refused
    resp = rerank.post("/v2/rerank", json={"query": "q"})
    # THEN the error is the API's (OpenAI's) object, which cohere's client reads, with no KServe code header
    assert_error(resp, 400, message="documents")
    assert "X-Error-Code" not in resp.headers
