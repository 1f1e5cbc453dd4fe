"""Request and response of POST /v1/images/classify (Hugging Face image-classification)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, RootModel

from maas.schemas.classify import ClassifyOptions, Explanation, LabelScore

GRID_DESCRIPTION = "With explain: cells per side of the attribution map (default 4: 4 x 4 cells; 2 to 8)."
EVALUATIONS_DESCRIPTION = (
    "With explain: the model evaluations each image may take (default 1024): exact Shapley values when all "
    "2^cells coalitions fit, else antithetic permutation sampling with as many permutations as fit."
)


class ImageClassifyParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    top_k: int | None = Field(None, description="Return the k best labels per image (default 5, as Hugging Face).")
    explain: bool | None = Field(
        None,
        description="true: explain each image's top label with Shapley values over a grid of cells (its first label "
        "gets an `explanation`). Each explained image costs model evaluations, each billed as an image; a request "
        "above the function's cap (MAAS_MAX_EXPLAIN_EVALUATIONS, default 16384) is a 400 `too_many_evaluations`.",
    )
    explain_evaluations: int | None = Field(None, ge=2, description=EVALUATIONS_DESCRIPTION)
    explain_grid: int | None = Field(None, description=GRID_DESCRIPTION)


class ImageClassifyRequest(BaseModel):
    """The JSON form. Raw image bytes (Content-Type image/png or image/jpeg) are the other; their `top_k` and
    `model` come from the query string."""

    model_config = ConfigDict(extra="forbid")

    inputs: str | list[str] = Field(
        description="A base64-encoded PNG or JPEG (a `data:image/...;base64,` prefix is accepted), or a list of "
        "them: one image gets one list of labels, a list of images one list per image, in order."
    )
    parameters: ImageClassifyParameters | None = None
    model: str | None = Field(None, description="Model id, e.g. `digits-cnn@1`; defaults to the served model.")
    options: ClassifyOptions | None = None


class ImageExplanation(Explanation):
    """An attribution map over the model's input picture (the image after fitting to the model's aspect ratio
    and resizing): cell [i][j] covers rows i/grid to (i+1)/grid and columns j/grid to (j+1)/grid of it; a masked
    cell is painted the background grey."""

    grid: int = Field(description="Cells per side.")
    size: list[int] = Field(description="[height, width] of the model's input picture, in pixels.")
    cells: list[list[float]] = Field(description="grid x grid Shapley values, row by row from the top left.")


class ExplainedImageLabelScore(LabelScore):
    explanation: ImageExplanation | None = Field(
        None, description="Only with explain, on each image's first (top) label."
    )


class ImageClassifyResponse(RootModel[list[ExplainedImageLabelScore] | list[list[ExplainedImageLabelScore]]]):
    """One image: its labels sorted by score (highest first); a list of images: one such list per image."""
