"""Request and response of POST /v1/rerank (the Cohere/Jina shape)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class RerankDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str


class RerankRequest(BaseModel):
    """Cohere's / Jina's `POST /rerank` body. Unknown fields are refused by name."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(description="The search query. Truncated at the model's maximum tokens.")
    documents: list[str | RerankDocument] = Field(
        description='Texts to score against the query: strings or {"text": ...} objects. Each is truncated '
        "at the model's maximum tokens (256 for all-minilm-l6-v2)."
    )
    model: str | None = Field(None, description="Model id, e.g. `all-minilm-l6-v2`; defaults to the served model.")
    top_n: int | None = Field(None, ge=1, description="Return only the best `top_n` results (default: all).")
    return_documents: bool = Field(False, description="Include each document's text in its result (Cohere v2).")

    @field_validator("documents", mode="before")
    @classmethod
    def _document_items(cls, value):
        # Name the offending item plainly instead of pydantic's per-branch union errors.
        if isinstance(value, list):
            for i, item in enumerate(value):
                if not isinstance(item, str | dict) or (
                    isinstance(item, dict) and not isinstance(item.get("text"), str)
                ):
                    raise ValueError(f'documents[{i}] must be a string or an object {{"text": string}}')
        return value


class RerankDocumentOut(BaseModel):
    text: str


class RerankResult(BaseModel):
    index: int = Field(description="Position of the document in the request's `documents`.")
    relevance_score: float = Field(description="Cosine similarity of query and document embeddings, in [-1, 1].")
    document: RerankDocumentOut | None = None


class RerankUsage(BaseModel):
    prompt_tokens: int = Field(description="Tokens of the query plus every document, as the model processed them.")
    total_tokens: int


class RerankResponse(BaseModel):
    object: str = "list"
    results: list[RerankResult] = Field(description="Sorted by relevance_score, highest first.")
    model: str
    usage: RerankUsage


class RerankV2Request(BaseModel):
    """Cohere's v2 `POST /v2/rerank` body (cohere.ClientV2.rerank, litellm's `cohere/` rerank). Unknown fields are
    refused by name."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="Model id, e.g. `all-minilm-l6-v2`; defaults to the served model.")
    query: str = Field(description="The search query. Truncated at the model's maximum tokens.")
    documents: list[str] = Field(description="Texts to score against the query, each truncated at the model's limit.")
    top_n: int | None = Field(None, ge=1, description="Return only the best `top_n` results (default: all).")
    max_tokens_per_doc: int | None = Field(
        None, ge=1, description="Accepted for Cohere compatibility; documents are truncated at the model's limit (256)."
    )
    priority: int | None = Field(None, description="Accepted for Cohere compatibility; no effect here.")
    return_documents: bool = Field(False, description="Include each document's text in its result (litellm sends it).")

    def as_v1(self) -> RerankRequest:
        """The same request in the v1 shape the service answers."""
        return RerankRequest(
            query=self.query,
            documents=self.documents,
            model=self.model,
            top_n=self.top_n,
            return_documents=self.return_documents,
        )


class RerankV2Result(BaseModel):
    index: int = Field(description="Position of the document in the request's `documents`.")
    relevance_score: float = Field(description="Cosine similarity of query and document embeddings, in [-1, 1].")
    document: RerankDocumentOut | None = None


class RerankV2Response(BaseModel):
    id: str = Field(description="The request's id.")
    results: list[RerankV2Result] = Field(description="Sorted by relevance_score, highest first.")
    meta: dict = Field(description='Cohere\'s `meta`: `{"api_version": {"version": "2"}}`.')
    model: str
    usage: RerankUsage
