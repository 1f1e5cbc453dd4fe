"""Rerank (POST /v1/rerank, the Cohere/Jina shape) with the embedding model.

Score = cosine similarity of the query's and each document's embedding. all-MiniLM-L6-v2 was trained for
exactly this (semantic search by cosine), its package normalises inside the graph, so the score is a dot
product of unit vectors: in [-1, 1], higher is more relevant, comparable across requests for the same model,
but not a calibrated probability (a cross-encoder's would be; none is served yet).
"""

from __future__ import annotations

import numpy as np

from maas.inference.package import BilledUnder, Manifest
from maas.inference.validation import check_token_budget, text_list
from maas.schemas.rerank import RerankRequest
from maas.tasks.embeddings import EmbeddingsService, Reserve

TASK = "rerank"


class RerankService:
    """Rerank on the container's embedding model (the same EmbeddingsService: one session, 503 on a failed
    load, retried)."""

    def __init__(self, embeddings: EmbeddingsService, max_documents: int):
        self.embeddings = embeddings
        self.settings = embeddings.settings
        self.max_documents = max_documents
        self.billed = BilledUnder(TASK)  # the answering version's manifest under this task

    def rerank(self, request: RerankRequest, reserve: Reserve | None = None) -> tuple[dict, Manifest]:
        """Validate limits, embed the query and the documents in one batch, score, sort: the response body, and
        what the usage event records (the version that answered, `name@version` pins one, under the rerank
        task). ``reserve(units)``: called once the billable units are known, before the model runs (the quota check)."""
        self.embeddings.ready()
        embedder, manifest = self.embeddings.pick(request.model)
        text_list(request.query, "query", 1)
        documents = [d if isinstance(d, str) else d.text for d in request.documents]
        texts = text_list(documents, "documents", self.max_documents, code="too_many_documents")
        encodings = embedder.tokenize([request.query, *texts])
        tokens = sum(len(e.ids) for e in encodings)
        check_token_budget(tokens, self.settings.request_token_budget, f"the query and {len(texts)} documents")
        if reserve is not None:
            reserve(tokens)
        result = embedder.embed([request.query, *texts], encodings)
        vectors = result.vectors
        if not manifest.normalized:  # the shipped package normalises in its graph; others may not
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        scores = vectors[1:] @ vectors[0]
        order = np.argsort(-scores, kind="stable")[: request.top_n]
        tokens = int(sum(result.token_counts))
        results = []
        for i in order.tolist():
            item = {"index": i, "relevance_score": round(float(scores[i]), 6)}
            if request.return_documents:
                item["document"] = {"text": texts[i]}
            results.append(item)
        model = manifest.name if manifest is self.embeddings.manifest else f"{manifest.name}@{manifest.version}"
        body = {
            "object": "list",
            "results": results,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return body, self.billed(manifest)
