"""Request and response models of POST /v1/classify (the Hugging Face text-classification task shape)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, RootModel


class ClassifyParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    top_k: int | None = Field(None, description="Return the k best labels per input (default: every label).")
    candidate_labels: list[str] | str | None = Field(
        None,
        description="Zero-shot: the labels to choose from (a list, or one comma-separated string). Scored by the "
        "embedding model; see the README for the rule.",
    )
    hypothesis_template: str | None = Field(
        None, description="Zero-shot: the sentence each label is put into, with '{}' for the label."
    )
    multi_label: bool | None = Field(
        None,
        description="Zero-shot (Hugging Face): true scores each label on its own (a sigmoid of its cosine; several "
        "labels may be near 1); false or absent: a softmax over the labels (the scores sum to 1).",
    )


class ClassifyOptions(BaseModel):
    """Hugging Face Inference API options: accepted for compatibility, no effect here."""

    model_config = ConfigDict(extra="forbid")

    wait_for_model: bool | None = None
    use_cache: bool | None = None


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: str | list[str] = Field(description="A text or a list of texts.")
    parameters: ClassifyParameters | None = None
    model: str | None = Field(
        None,
        description="A classifier (default: the function's first one) or, with candidate_labels, the embedding model.",
    )
    truncate: bool = Field(True, description="Truncate inputs longer than the model's limit (false: a 400).")
    options: ClassifyOptions | None = None


class LabelScore(BaseModel):
    label: str
    score: float


class ClassifyResponse(RootModel[list[list[LabelScore]] | list[LabelScore]]):
    """Per input, in input order, its labels sorted by score (highest first). Zero-shot with a single string input
    answers one flat list, as the Hugging Face API does."""
