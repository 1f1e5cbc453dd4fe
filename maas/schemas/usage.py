"""The body of GET /v1/usage: the caller's own usage, quota and failed requests."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field


class UsageRow(BaseModel):
    date: dt.date = Field(description="UTC day.")
    model: str = Field(description="Model id as `name@version`.")
    units: int = Field(description="Billable units: input tokens for text models, images for vision models.")
    requests: int
    compute_ms: float = Field(description="Inference time billed, summed over the requests.")


class UsageTotals(BaseModel):
    units: int
    requests: int


class QuotaState(BaseModel):
    limit: int = Field(description="The plan's monthly quota of billable units.")
    consumed: int = Field(description="Units used this month (UTC).")
    remaining: int
    reset: str = Field(description="When the quota resets (RFC 3339, start of next month, UTC).")


class FailedDay(BaseModel):
    date: dt.date
    status_4xx: int = Field(0, description="Refused requests (not billed).")
    status_5xx: int = Field(0, description="Requests that failed on our side (not billed).")


class UsageResponse(BaseModel):
    object: Literal["usage"] = "usage"
    tenant_id: str
    plan: str
    start: dt.date
    end: dt.date
    data: list[UsageRow] = Field(description="Per day and model, in the range; days without usage are left out.")
    totals: UsageTotals = Field(description="Sums of `data`.")
    quota: QuotaState = Field(description="This month's quota, whatever the range.")
    failed: list[FailedDay] = Field(description="Failed requests per day, in the range.")
