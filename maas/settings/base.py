"""The one way a function reads its environment: ``EnvSettings.from_env`` and the error it raises."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Self

from pydantic import BaseModel, ConfigDict, ValidationError


class SettingsError(Exception):
    """The function's environment is invalid; the message names the variable."""


class EnvSettings(BaseModel):
    """A frozen settings object whose fields are environment variables (each field's alias is the variable's name).

    Subclasses combine mixins (maas.settings.mixins); they declare fields, never parsing code.
    """

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    @classmethod
    def env_names(cls) -> frozenset[str]:
        """The variables this class reads."""
        return frozenset(f.alias for f in cls.model_fields.values() if f.alias)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Validate the variables this class declares (others are ignored); unset ones take their documented
        defaults. Raises SettingsError naming each invalid variable."""
        environ = os.environ if environ is None else environ
        names = cls.env_names()
        try:
            return cls.model_validate({k: v for k, v in environ.items() if k in names})
        except ValidationError as exc:
            problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" if e["loc"] else e["msg"] for e in exc.errors())
            raise SettingsError(f"invalid function settings: {problems}") from exc
