"""Rerank clients against `maas serve`: cohere (Client on /v1/rerank, ClientV2 on /v2/rerank), litellm."""

from __future__ import annotations

import pytest

from tests.clients.conftest import EMBEDDING_MODEL

QUERY = "my package has not arrived"
DOCUMENTS = ["The weather is nice today.", "Where is my delivery? The courier is late.", "Reset your password."]


@pytest.fixture(scope="module")
def expected(served) -> list[tuple[int, float]]:
    """(index, score) as the rerank handler answers, best first."""
    response = served.post("/v1/rerank", json={"model": EMBEDDING_MODEL, "query": QUERY, "documents": DOCUMENTS})
    assert response.status_code == 200, response.text
    ranked = [(r["index"], r["relevance_score"]) for r in response.json()["results"]]
    assert ranked[0][0] == 1
    return ranked


def _same(results, expected) -> None:
    assert [r.index for r in results] == [i for i, _ in expected]
    assert [r.relevance_score for r in results] == pytest.approx([s for _, s in expected], abs=1e-6)


def test_cohere_client_v1(served, expected):
    import cohere

    client = cohere.Client(api_key=served.key, base_url=served.base_url)
    _same(client.rerank(model=EMBEDDING_MODEL, query=QUERY, documents=DOCUMENTS).results, expected)


def test_cohere_client_v2(served, expected):
    import cohere

    client = cohere.ClientV2(api_key=served.key, base_url=served.base_url)
    answer = client.rerank(model=EMBEDDING_MODEL, query=QUERY, documents=DOCUMENTS, top_n=2)
    _same(answer.results, expected[:2])


@pytest.mark.parametrize("provider", ["cohere", "jina_ai"])
def test_litellm_rerank(served, expected, provider):
    import litellm

    answer = litellm.rerank(
        model=f"{provider}/{EMBEDDING_MODEL}",
        query=QUERY,
        documents=DOCUMENTS,
        api_base=served.base_url + ("/v1/rerank" if provider == "jina_ai" else ""),
        api_key=served.key,
    )
    assert [r["index"] for r in answer.results] == [i for i, _ in expected]
    assert [r["relevance_score"] for r in answer.results] == pytest.approx([s for _, s in expected], abs=1e-6)
