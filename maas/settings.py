"""One validated settings object per function, read from the environment when the function starts."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from maas import constants as c


class SettingsError(Exception):
    """The function's environment is invalid; the message names the variable."""


class EmbeddingsSettings(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    model_source: str = Field(c.DEFAULT_MODEL_SOURCE, alias=c.ENV_MODEL_SOURCE, min_length=1)
    model_cache_dir: Path = Field(Path(c.DEFAULT_MODEL_CACHE_DIR), alias=c.ENV_MODEL_CACHE_DIR)
    threads: int | None = Field(None, alias=c.ENV_THREADS, ge=1, le=64)
    max_inputs: int = Field(c.DEFAULT_MAX_INPUTS, alias=c.ENV_MAX_INPUTS, ge=1, le=2048)
    max_body_bytes: int = Field(c.DEFAULT_MAX_BODY_BYTES, alias=c.ENV_MAX_BODY_BYTES, ge=1024, le=10 * 1024 * 1024)
    batch_size: int = Field(c.DEFAULT_BATCH_SIZE, alias=c.ENV_BATCH_SIZE, ge=1, le=256)
    batch_tokens: int = Field(c.DEFAULT_BATCH_TOKENS, alias=c.ENV_BATCH_TOKENS, ge=16, le=65536)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EmbeddingsSettings:
        """Validate the variables this function reads; unset ones take their documented defaults."""
        environ = os.environ if environ is None else environ
        names = {f.alias for f in cls.model_fields.values() if f.alias}
        try:
            return cls.model_validate({k: v for k, v in environ.items() if k in names})
        except ValidationError as exc:
            problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
            raise SettingsError(f"invalid function settings: {problems}") from exc
