"""OpenAI-compatible clients against `maas serve`: openai, langchain-openai, llama-index, litellm (embeddings)."""

from __future__ import annotations

import asyncio

import numpy as np
import openai
import pytest

from tests.clients.conftest import EMBEDDING_MODEL, HEAVY_MODEL, VECTOR_ATOL

TEXTS = ["Where is my parcel?", "The invoice shows a double charge.", "I cannot log in."]


def test_openai_embeddings_with_its_defaults_equal_the_handlers(served):
    # GIVEN the SDK with only a base URL and a key (its default encoding_format is base64)
    client = openai.OpenAI(base_url=f"{served.base_url}/v1", api_key=served.key, max_retries=0)
    # WHEN it embeds a list and a single string
    listed = client.embeddings.create(model=EMBEDDING_MODEL, input=TEXTS)
    single = client.embeddings.create(model=EMBEDDING_MODEL, input=TEXTS[0])
    # THEN the vectors are the handler's, in order
    expected = served.vectors(TEXTS)
    np.testing.assert_allclose([d.embedding for d in listed.data], expected, atol=VECTOR_ATOL)
    np.testing.assert_allclose(single.data[0].embedding, expected[0], atol=VECTOR_ATOL)
    assert listed.usage.total_tokens > 0


def test_openai_async_and_the_heavy_model(served):
    async def embed():
        client = openai.AsyncOpenAI(base_url=f"{served.base_url}/v1", api_key=served.key, max_retries=0)
        return await client.embeddings.create(model=HEAVY_MODEL, input=TEXTS)

    answer = asyncio.run(embed())
    # the fp32 reference of the int8 model: the same sentences, within the int8 package's quality bound
    cosine = np.sum(np.array([d.embedding for d in answer.data]) * served.vectors(TEXTS), axis=1)
    assert answer.model == HEAVY_MODEL and (cosine > 0.98).all()
    np.testing.assert_allclose([d.embedding for d in answer.data], served.vectors(TEXTS, HEAVY_MODEL), atol=1e-4)


def test_openai_lists_and_retrieves_every_callable_model(served):
    client = openai.OpenAI(base_url=f"{served.base_url}/v1", api_key=served.key, max_retries=0)
    cards = {m.id: m for m in client.models.list()}
    assert {EMBEDDING_MODEL, HEAVY_MODEL, "ticket-intents", "digits-cnn"} <= cards.keys()
    assert cards["ticket-intents"].model_extra["task"] == "classify"
    assert "billing" in cards["ticket-intents"].model_extra["labels"]
    assert cards["digits-cnn"].model_extra["routes"] == ["POST /v1/images/classify"]
    assert cards[HEAVY_MODEL].model_extra["runtime"] == "sagemaker"
    heavy = client.models.retrieve(HEAVY_MODEL)
    assert heavy.id == HEAVY_MODEL and heavy.model_extra["dimensions"] == 384


def test_openai_raises_its_typed_errors(served):
    client = openai.OpenAI(base_url=f"{served.base_url}/v1", api_key=served.key, max_retries=0)
    with pytest.raises(openai.NotFoundError) as found:
        client.embeddings.create(model="gpt-4", input="x")
    assert found.value.code == "model_not_found"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{served.base_url}/v1", api_key="maas_nope_nope", max_retries=0).models.list()


def test_langchain_openai_embeddings_with_its_one_setting(served):
    from langchain_openai import OpenAIEmbeddings

    # check_embedding_ctx_length=False: otherwise it sends tiktoken cl100k token ids (see README)
    embeddings = OpenAIEmbeddings(
        model=EMBEDDING_MODEL,
        base_url=f"{served.base_url}/v1",
        api_key=served.key,
        check_embedding_ctx_length=False,
        max_retries=0,
    )
    expected = served.vectors(TEXTS)
    np.testing.assert_allclose(embeddings.embed_documents(TEXTS), expected, atol=VECTOR_ATOL)
    np.testing.assert_allclose(embeddings.embed_query(TEXTS[1]), expected[1], atol=VECTOR_ATOL)


def test_langchain_openai_defaults_get_a_400_that_names_the_setting(served):
    response = served.post("/v1/embeddings", json={"model": EMBEDDING_MODEL, "input": [[9906, 1917]]})
    assert response.status_code == 400 and "check_embedding_ctx_length=False" in response.json()["error"]["message"]


def test_llama_index_openai_like_and_openai_embedding(served):
    from llama_index.embeddings.openai import OpenAIEmbedding
    from llama_index.embeddings.openai_like import OpenAILikeEmbedding

    expected = served.vectors(TEXTS)
    like = OpenAILikeEmbedding(model_name=EMBEDDING_MODEL, api_base=f"{served.base_url}/v1", api_key=served.key)
    np.testing.assert_allclose(like.get_text_embedding_batch(TEXTS), expected, atol=VECTOR_ATOL)
    plain = OpenAIEmbedding(model_name=EMBEDDING_MODEL, api_base=f"{served.base_url}/v1", api_key=served.key)
    np.testing.assert_allclose(plain.get_query_embedding(TEXTS[2]), expected[2], atol=VECTOR_ATOL)


def test_litellm_embedding(served):
    import litellm

    answer = litellm.embedding(
        model=f"openai/{EMBEDDING_MODEL}", input=TEXTS, api_base=f"{served.base_url}/v1", api_key=served.key
    )
    vectors = [d["embedding"] for d in sorted(answer.data, key=lambda d: d["index"])]
    np.testing.assert_allclose(vectors, served.vectors(TEXTS), atol=VECTOR_ATOL)
