"""Per-request billing for task handlers: who is calling, quota pre-check, exactly-once charge, failures.

The tenant comes only from the authorizer's context in the event (requestContext.authorizer), never
from the body or other headers.
"""

from __future__ import annotations

import hashlib
import logging
import time

from maas.errors import ApiError, Unauthorized
from maas.inference.package import Manifest
from maas.metering.store import Meter, QuotaExceeded, QuotaStatus, UsageEvent
from maas.tenancy.plans import Plan, default_plans, load_plans
from maas.tenancy.store import Caller

IDEMPOTENCY_HEADER = "idempotency-key"


def caller_from_event(event: dict) -> Caller | None:
    """The authorizer's verdict carried in the event, or None when the request was not authorized."""
    ctx = (event.get("requestContext") or {}).get("authorizer") or {}
    tenant, plan = ctx.get("tenant_id"), ctx.get("plan")
    if not tenant or not plan:
        return None
    return Caller(tenant_id=str(tenant), plan=str(plan), key_prefix=str(ctx.get("key_prefix", "")))


def request_id_of(event: dict, caller: Caller | None) -> str:
    """API Gateway's request id (the same when Lambda runs the same event twice), or, when the client sends
    an Idempotency-Key, a stable id derived from it, so a client's retry is billed once too."""
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    key = headers.get(IDEMPOTENCY_HEADER)
    if key and caller is not None:
        digest = hashlib.sha256(f"{caller.tenant_id}\n{key}".encode()).hexdigest()[:40]
        return f"idem-{digest}"
    return (event.get("requestContext") or {}).get("requestId") or f"local-{time.time_ns()}"


def plans_from_settings(settings) -> dict[str, Plan]:
    """The plans a function prices and limits by: the settings' plans file if it names one, else the packaged ones."""
    return load_plans(settings.plans_file) if settings.plans_file else default_plans()


class Billing:
    """Metering for one function. With ``meter`` None, metering is off (benchmarks of the bare handler only)."""

    def __init__(self, meter: Meter | None, plans: dict[str, Plan], logger: logging.Logger | None = None, metrics=None):
        self.meter = meter
        self.plans = plans
        self.logger = logger or logging.getLogger(__name__)
        self.metrics = metrics  # Powertools Metrics (EMF), optional

    @classmethod
    def from_settings(cls, settings, logger: logging.Logger, metrics=None) -> Billing:
        """Metering against the usage table a function's settings (maas.settings.mixins.MeteringEnv) name."""
        plans = plans_from_settings(settings)
        if settings.metering == "off":
            logger.warning("metering is OFF: requests are neither authenticated against quotas nor billed")
            return cls(None, plans, logger, metrics)
        import boto3  # only functions that meter import boto3

        return cls(Meter(boto3.client("dynamodb"), settings.usage_table), plans, logger, metrics)

    def _metric(self, name: str, value: float, unit: str = "Count") -> None:
        if self.metrics is not None:
            self.metrics.add_metric(name=name, unit=unit, value=value)

    @property
    def enabled(self) -> bool:
        return self.meter is not None

    def caller(self, event: dict) -> Caller | None:
        caller = caller_from_event(event)
        if caller is None and self.enabled:
            raise Unauthorized("Missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'.")
        if caller is not None and self.enabled and caller.plan not in self.plans:
            self.logger.error("authorizer returned an unknown plan", extra={"plan": caller.plan})
            raise Unauthorized("The API key's plan is not configured.", code="unknown_plan")
        return caller

    def precheck(self, caller: Caller | None) -> QuotaStatus | None:
        """Refuse before any compute when the month's quota is already used up."""
        if not self.enabled or caller is None:
            return None
        status = self.meter.quota(caller.tenant_id, self.plans[caller.plan].monthly_quota)
        if status.remaining <= 0:
            raise QuotaExceeded(status, 1)
        return status

    def charge(
        self,
        caller: Caller | None,
        request_id: str,
        manifest: Manifest,
        units: int,
        compute_ms: float,
        before: QuotaStatus | None,
    ) -> dict[str, str]:
        """Bill the call exactly once; return the quota headers for the response."""
        if not self.enabled or caller is None:
            return {}
        event = UsageEvent(
            request_id=request_id,
            tenant_id=caller.tenant_id,
            key_prefix=caller.key_prefix,
            model=manifest.name,
            version=manifest.version,
            task=manifest.task,
            units=units,
            compute_ms=compute_ms,
            time=time.time(),
        )
        if self.metrics is not None:
            self.metrics.add_dimension(name="model", value=manifest.name)
            self.metrics.add_dimension(name="task", value=manifest.task)
        billed, _ = self.meter.record(event, self.plans[caller.plan].monthly_quota)
        self._metric("BilledRequests", 1 if billed else 0)
        self._metric("BilledUnits", units if billed else 0)
        self._metric("ComputeMilliseconds", compute_ms, "Milliseconds")
        if not billed:
            self.logger.info("retry of a billed request: not billed again", extra={"request_id": request_id})
        consumed = (before.consumed if before else 0) + (units if billed else 0)
        after = QuotaStatus(self.plans[caller.plan].monthly_quota, consumed, before.reset if before else None)
        return after.headers() if before else {}

    def failed(self, caller: Caller | None, err: ApiError) -> dict[str, str]:
        """Count a refused request apart (not billed); quota errors carry the quota headers."""
        self._metric("QuotaRejections" if isinstance(err, QuotaExceeded) else f"Failed{err.status // 100}xx", 1)
        if self.enabled and caller is not None:
            try:
                self.meter.count_failure(caller.tenant_id, err.status)
            except Exception:  # counting a failure must never turn a 4xx into a 500
                self.logger.exception("could not count a failed request")
        return {**err.headers, **(err.quota.headers() if isinstance(err, QuotaExceeded) else {})}
