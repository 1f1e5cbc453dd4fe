"""Plans: throttling, the monthly quota of billable units, prices per model family (maas/data/plans.toml)."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class Plan(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    description: str = ""
    rate_limit: float = Field(gt=0)
    burst_limit: int = Field(gt=0)
    monthly_quota: int = Field(ge=0)
    price_per_million_units_usd: dict[str, float]
    # The Batch API's price: the same units at (1 - batch_discount) of the price; 0 where a plan sets none.
    batch_discount: float = Field(0.0, ge=0, le=1)

    def price(self, family: str) -> float:
        """USD per million units of a model family; a family the plan does not price costs 0."""
        return self.price_per_million_units_usd.get(family, 0.0)


class PlansError(Exception):
    pass


def load_plans(path: Path | None = None) -> dict[str, Plan]:
    """Plans from ``path`` or the packaged plans.toml."""
    raw = Path(path).read_bytes() if path else (resources.files("maas") / "data" / "plans.toml").read_bytes()
    try:
        data = tomllib.loads(raw.decode("utf-8"))
        return {name: Plan(name=name, **spec) for name, spec in data["plans"].items()}
    except Exception as exc:
        raise PlansError(f"invalid plans file {path or 'maas/data/plans.toml'}: {exc}") from exc


@cache
def default_plans() -> dict[str, Plan]:
    return load_plans()
