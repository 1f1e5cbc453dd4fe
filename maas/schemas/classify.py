"""Request and response models of POST /v1/classify (the Hugging Face text-classification task shape)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

EXPLAIN_DESCRIPTION = (
    "true: explain each input's predicted label with Shapley values (its first label gets an `explanation`). "
    "Each explained input costs model evaluations, billed as that many forward passes; a request above the "
    "function's cap (MAAS_MAX_EXPLAIN_EVALUATIONS, default 2048) is a 400 `too_many_evaluations`."
)
EVALUATIONS_DESCRIPTION = (
    "With explain: the model evaluations each input may take (default 256): exact Shapley values when all "
    "2^players coalitions fit, else antithetic permutation sampling with as many permutations as fit (at least one "
    "permutation and its reverse: an input of M words takes up to 2M evaluations whatever the budget)."
)


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
    explain: bool | None = Field(None, description=EXPLAIN_DESCRIPTION)
    explain_evaluations: int | None = Field(None, ge=2, description=EVALUATIONS_DESCRIPTION)


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


class Explanation(BaseModel):
    """Why the model gave its first label this score: additive Shapley values, one per player (a word, an image
    cell), such that ``base_value + sum(values) == value`` (up to the rounding to 6 decimals)."""

    output: Literal["probability"] = Field(
        description="What is explained: the label's probability (the response's score), not a logit."
    )
    value: float = Field(description="The label's probability for the input: the score.")
    base_value: float = Field(
        description="The label's probability with every player masked (every word a [MASK] token, every cell blank)."
    )
    method: Literal["exact", "permutation"] = Field(
        description="exact: every coalition evaluated (shap's ExactExplainer); permutation: antithetic permutation "
        "sampling from a fixed seed (shap's PermutationExplainer)."
    )
    evaluations: int = Field(description="Model evaluations this input took (each one billed as a forward pass).")


class WordValue(BaseModel):
    text: str = Field(description="The word as it appears in the input (whitespace-delimited).")
    start: int = Field(description="Character offset of the word's first character in the input.")
    end: int = Field(description="Character offset just after the word's last character.")
    value: float = Field(description="The word's Shapley value: what it adds to the label's probability.")


class TextExplanation(Explanation):
    """Per word of the input that reached the model (a truncated input's tail is not explained)."""

    words: list[WordValue]


class ExplainedLabelScore(LabelScore):
    explanation: TextExplanation | None = Field(
        None, description="Only with parameters.explain, on each input's first (predicted) label."
    )


class ClassifyResponse(RootModel[list[list[ExplainedLabelScore]] | list[ExplainedLabelScore]]):
    """Per input, in input order, its labels sorted by score (highest first). Zero-shot with a single string input
    answers one flat list, as the Hugging Face API does."""
