"""Request and response of POST /v1/images/classify (Hugging Face image-classification)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, RootModel

from maas.schemas.classify import ClassifyOptions, LabelScore


class ImageClassifyParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    top_k: int | None = Field(None, description="Return the k best labels per image (default 5, as Hugging Face).")


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


class ImageClassifyResponse(RootModel[list[LabelScore] | list[list[LabelScore]]]):
    """One image: its labels sorted by score (highest first); a list of images: one such list per image."""
