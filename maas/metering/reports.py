"""Usage as tenants and operators see it: the caller's own usage (GET /v1/usage), usage date ranges, and the
check of the monthly aggregates against the events.

The aggregates are written in the same transaction as the events, so the two must agree
(``aggregate_mismatches``, over the invoice lines of maas.metering.export).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime

from maas.errors import InvalidRequest, Unauthorized
from maas.metering.export import InvoiceLine
from maas.metering.store import Meter
from maas.tenancy.plans import Plan
from maas.tenancy.store import Caller

MAX_RANGE_DAYS = 366
_DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")


# --- date ranges ------------------------------------------------------------------------------------------


def parse_day(value: str, name: str) -> date:
    """A calendar day written exactly as YYYY-MM-DD; anything else is a 400 naming the parameter."""
    try:
        if not _DAY_RE.match(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(
            f"'{name}' must be a date written as YYYY-MM-DD, got {value!r}.", code="invalid_date", param=name
        ) from None


def usage_range(start: str | None, end: str | None, today: date) -> tuple[date, date]:
    """The inclusive day range of a usage request. Defaults: the current month to date; with only ``end``,
    that month up to ``end``. At most MAX_RANGE_DAYS days, start <= end."""
    last = parse_day(end, "end") if end is not None else today
    first = parse_day(start, "start") if start is not None else last.replace(day=1)
    if first > last:
        raise InvalidRequest(f"'start' ({first}) is after 'end' ({last}).", code="invalid_range", param="start")
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        raise InvalidRequest(
            f"'start' ({first}) to 'end' ({last}) spans {(last - first).days + 1} days; at most {MAX_RANGE_DAYS} "
            "may be asked for at once.",
            code="invalid_range",
            param="start",
        )
    return first, last


def parse_month(value: str) -> tuple[float, float]:
    """'YYYY-MM' -> (start, end) epoch seconds of that UTC month, end exclusive. ValueError when malformed."""
    m = _MONTH_RE.match(value or "")
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise ValueError(f"month must be written as YYYY-MM (e.g. 2026-03), got {value!r}")
    year, month = int(m.group(1)), int(m.group(2))
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return start.timestamp(), end.timestamp()


def rfc3339(moment: datetime) -> str:
    """A moment in UTC as RFC 3339 with a trailing Z (what the usage API and the exports write)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- the caller's own usage -------------------------------------------------------------------------------


class UsageService:
    """GET /v1/usage: the calling tenant's aggregates, quota and failures. The tenant is the authorizer's."""

    def __init__(self, meter: Meter, plans: dict[str, Plan]):
        self.meter = meter
        self.plans = plans

    def caller_usage(
        self, caller: Caller | None, start: str | None = None, end: str | None = None, now: float | None = None
    ) -> dict:
        """The caller's per-day, per-model usage in [start, end], totals, this month's quota and failures."""
        if caller is None:
            raise Unauthorized("Missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'.")
        plan = self.plans.get(caller.plan)
        if plan is None:
            raise Unauthorized("The API key's plan is not configured.", code="unknown_plan")
        now = time.time() if now is None else now
        first, last = usage_range(start, end, datetime.fromtimestamp(now, UTC).date())
        rows = [
            {
                "date": row["period"],
                "model": row["model"],
                "units": row["units"],
                "requests": row["requests"],
                "compute_ms": row["compute_ms"],
            }
            for row in self.meter.daily(caller.tenant_id, first.isoformat(), last.isoformat())
        ]
        quota = self.meter.quota(caller.tenant_id, plan.monthly_quota, now)
        failed = [
            {"date": f["day"], "status_4xx": f.get("status_4xx", 0), "status_5xx": f.get("status_5xx", 0)}
            for f in self.meter.failures(caller.tenant_id, first.isoformat(), last.isoformat())
        ]
        return {
            "object": "usage",
            "tenant_id": caller.tenant_id,
            "plan": caller.plan,
            "start": first,
            "end": last,
            "data": rows,
            "totals": {"units": sum(r["units"] for r in rows), "requests": sum(r["requests"] for r in rows)},
            "quota": {
                "limit": quota.limit,
                "consumed": quota.consumed,
                "remaining": quota.remaining,
                "reset": rfc3339(quota.reset),
            },
            "failed": failed,
        }


# --- aggregate checks -------------------------------------------------------------------------------------


def aggregate_mismatches(lines: list[InvoiceLine], aggregates: list[dict]) -> list[str]:
    """Models whose summed events differ from the month's aggregate row (units or requests), described."""
    from_events: dict[str, tuple[int, int]] = {}
    for line in lines:
        units, requests = from_events.get(line.model, (0, 0))
        from_events[line.model] = (units + line.units, requests + line.requests)
    from_aggs = {row["model"]: (row["units"], row["requests"]) for row in aggregates}
    return [
        f"{model}: events say {from_events.get(model, (0, 0))} (units, requests), "
        f"the aggregate says {from_aggs.get(model, (0, 0))}"
        for model in sorted(set(from_events) | set(from_aggs))
        if from_events.get(model, (0, 0)) != from_aggs.get(model, (0, 0))
    ]
