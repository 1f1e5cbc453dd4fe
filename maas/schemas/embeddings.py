"""Public request and response models; the OpenAPI document is generated from these."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator, model_validator


class EmbeddingsRequest(BaseModel):
    """OpenAI's `POST /v1/embeddings` body. Unknown fields are refused by name."""

    model_config = ConfigDict(extra="forbid")

    input: str | list[str] = Field(
        description="Text or list of texts to embed. Each must be non-empty; texts longer than the model's "
        "maximum tokens are truncated at that limit unless `truncate` is false."
    )
    model: str | None = Field(None, description="Model id, e.g. `all-minilm-l6-v2`; defaults to the served model.")
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="`float`: JSON numbers; `base64`: little-endian float32 bytes, base64-encoded."
    )
    user: str | None = Field(None, max_length=256, description="End-user id; accepted for compatibility, not stored.")
    dimensions: int | None = Field(None, description="Only the model's native size is supported.")
    truncate: bool = Field(True, description="maas extension: false turns over-long inputs into a 400 error.")

    @model_validator(mode="before")
    @classmethod
    def _no_token_arrays(cls, data):
        if isinstance(data, dict):
            value = data.get("input")
            if isinstance(value, list) and value and all(isinstance(v, int | list) for v in value):
                # Token ids are a tokenizer's (langchain-openai sends OpenAI's cl100k ids), not this model's: embedding
                # them would be wrong, silently. Say what to change instead.
                raise ValueError(
                    "token arrays are not supported as input; send text (langchain-openai: "
                    "OpenAIEmbeddings(..., check_embedding_ctx_length=False))"
                )
        return data


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class Usage(BaseModel):
    prompt_tokens: int = Field(description="Tokens the model processed (after truncation, incl. [CLS]/[SEP]).")
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage


class ModelCard(BaseModel):
    """OpenAI's model object, with what a caller needs to call it: its task, version, size or labels, and routes."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    task: str | None = None
    version: str | None = None
    dimensions: int | None = None
    max_input_tokens: int | None = None
    labels: list[str] | None = Field(None, description="A classifier's labels.")
    runtime: str | None = Field(None, description="layer or s3 (Lambda), sagemaker (the GPU endpoint).")
    quality: dict | None = Field(
        None,
        description="Measured fidelity of a served package: min/mean cosine to the fp32 reference on the eval set "
        "(exact and fast tiers), or its task evaluation (the static tier).",
    )
    routes: list[str] = Field(default_factory=list, description="The routes that take this model id.")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class FeatureExtractionRequest(BaseModel):
    """Hugging Face's feature-extraction body (huggingface_hub's InferenceClient.feature_extraction; the parameters
    sit at the top level, as in Text Embeddings Inference). Unknown fields are refused by name."""

    model_config = ConfigDict(extra="forbid")

    inputs: str | list[str] = Field(description="A text or a list of texts.")
    model: str | None = Field(None, description="maas extension: the model id; defaults to the served model.")
    normalize: bool | None = Field(None, description="Vectors are L2-normalised by the model: false is refused.")
    truncate: bool | None = Field(None, description="Truncate at the model's limit (default); false: a 400 instead.")
    truncation_direction: Literal["right", "Right"] | None = Field(None, description="Only right (the default).")
    dimensions: int | None = Field(None, description="Only the model's native size is supported.")
    prompt_name: None = Field(None, description="Not supported (the model has no prompts).")
    encoding_format: Literal["float"] | None = Field(None, description="Only float.")

    @field_validator("normalize")
    @classmethod
    def _normalized_only(cls, value):
        if value is False:
            raise ValueError("false is not supported: the model L2-normalises its vectors")
        return value

    def as_embeddings(self) -> EmbeddingsRequest:
        """The same request as POST /v1/embeddings takes it."""
        return EmbeddingsRequest(
            input=self.inputs, model=self.model, dimensions=self.dimensions, truncate=self.truncate is not False
        )


class FeatureExtractionResponse(RootModel[list[list[float]]]):
    """One vector per input, in input order (a single string too: a list of one vector, as TEI answers)."""
