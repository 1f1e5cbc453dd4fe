"""Bodies only the heavy-model endpoint takes (its other routes take the public API's bodies)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class EmbedBatchRequest(BaseModel):
    """A slice of a batch job's texts (already validated line by line by the worker)."""

    model_config = ConfigDict(extra="forbid")

    input: list[str]
