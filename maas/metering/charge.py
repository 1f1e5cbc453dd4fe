"""Per-request billing for task handlers: who is calling, idempotency, quota before compute, one write to bill.

The tenant comes only from the authorizer's context in the event (requestContext.authorizer), never
from the body or other headers. A request goes: ``admit`` (its billing id; an Idempotency-Key is bound to the
request's fingerprint) -> ``reserve`` its units from the container's quota lease, before the model runs ->
``commit``: the one usage-event write -> or ``release`` if it failed. See maas/metering/README.md.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import logging
import time
from dataclasses import dataclass

from maas.errors import ApiError, Unauthorized
from maas.inference.package import Manifest
from maas.metering.leases import QuotaLeases, Reservation
from maas.metering.store import IdempotencyKeyReused, Meter, QuotaExceeded, QuotaStatus, UsageEvent
from maas.tenancy.plans import Plan, default_plans, load_plans
from maas.tenancy.store import Caller

IDEMPOTENCY_HEADER = "idempotency-key"
IDEMPOTENCY_TTL_S = 24 * 3600  # a key binds its request for 24 hours, then it may be used again
MAX_KEY_GENERATIONS = 64  # a key reused after expiry takes the next generation of its billing id
REPLAYED_HEADER = "Idempotent-Replayed"


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
    key = idempotency_key(event)
    if key and caller is not None:
        digest = hashlib.sha256(f"{caller.tenant_id}\n{key}".encode()).hexdigest()[:40]
        return f"idem-{digest}"
    return (event.get("requestContext") or {}).get("requestId") or f"local-{time.time_ns()}"


def plans_from_settings(settings) -> dict[str, Plan]:
    """The plans a function prices and limits by: the settings' plans file if it names one, else the packaged ones."""
    return load_plans(settings.plans_file) if settings.plans_file else default_plans()


def idempotency_key(event: dict) -> str | None:
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    return headers.get(IDEMPOTENCY_HEADER) or None


def fingerprint(event: dict) -> str:
    """sha256 of what makes a request this request: method, route, query (the model may be there) and body."""
    body = event.get("body") or ""
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode("utf-8")
    query = sorted((event.get("queryStringParameters") or {}).items())
    route = f"{event.get('httpMethod', '')} {event.get('path') or event.get('resource') or ''} {query}"
    return hashlib.sha256(route.encode() + b"\0" + hashlib.sha256(raw).digest()).hexdigest()


@dataclass
class Ticket:
    """One request's billing state: who, under which id, and what was set aside for it."""

    caller: Caller | None
    request_id: str
    fingerprint: str
    keyed: bool = False  # the billing id comes from the client's Idempotency-Key
    replay: bool = False  # an Idempotency-Key retry of a request billed before: served again, not billed
    reservation: Reservation | None = None
    batch: bool = False  # a Batch API part: priced at the plan's batch price


class Billing:
    """Metering for one function. With ``meter`` None, metering is off (benchmarks of the bare handler only)."""

    def __init__(
        self,
        meter: Meter | None,
        plans: dict[str, Plan],
        logger: logging.Logger | None = None,
        metrics=None,
        clock=time.time,
    ):
        self.meter = meter
        self.plans = plans
        self.logger = logger or logging.getLogger(__name__)
        self.metrics = metrics  # Powertools Metrics (EMF), optional
        self.clock = clock
        self.leases = QuotaLeases(meter, clock) if meter is not None else None

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

    def _dimensions(self, wanted: dict[str, str]) -> None:
        """Set the metrics' model and task dimensions. Metrics recorded under another model's go out first, under
        theirs: a batch worker bills several models in one invocation (a classify part's trained and zero-shot
        lines), and one EMF line has one set of dimensions."""
        current = dict(getattr(self.metrics, "dimension_set", None) or {})
        if all(current.get(k) == v for k, v in wanted.items()):
            return
        if any(k in current for k in wanted):
            if getattr(self.metrics, "metric_set", None):
                self.metrics.flush_metrics()
            else:
                self.metrics.clear_metrics()
            current = {}
        for name, value in wanted.items():
            if name not in current:
                self.metrics.add_dimension(name=name, value=value)

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

    def admit(self, caller: Caller | None, event: dict) -> Ticket:
        """The request's billing id. With an Idempotency-Key, before anything runs: a key first used with another
        request in the last 24 h is refused (422), and a retry of a billed request is marked a replay."""
        keyed = caller is not None and idempotency_key(event) is not None
        ticket = Ticket(caller, request_id_of(event, caller), fingerprint(event), keyed=keyed)
        if not self.enabled or not keyed:
            return ticket
        base, now = ticket.request_id, self.clock()
        for generation in range(MAX_KEY_GENERATIONS):
            ticket.request_id = base if generation == 0 else f"{base}.{generation}"
            first = self.meter.find_event(ticket.request_id)
            if first is None:
                return ticket
            if first.time >= now - IDEMPOTENCY_TTL_S:
                if first.fingerprint != ticket.fingerprint:
                    raise IdempotencyKeyReused()
                ticket.replay = True
                return ticket
        return ticket

    def reserve(self, ticket: Ticket, units: int) -> None:
        """Set the request's units aside before the model runs; QuotaExceeded (429) if they do not fit."""
        if not self.enabled or ticket.caller is None or ticket.replay:
            return
        plan = self.plans[ticket.caller.plan]
        ticket.reservation = self.leases.reserve(ticket.caller.tenant_id, units, plan.monthly_quota)

    def release(self, ticket: Ticket | None) -> None:
        """The request failed after ``reserve``: its units go back to the lease."""
        if ticket is not None and ticket.reservation is not None:
            self.leases.release(ticket.reservation)
            ticket.reservation = None

    def commit(self, ticket: Ticket, manifest: Manifest, units: int, compute_ms: float) -> dict[str, str]:
        """Bill the served request exactly once (one conditional put); return the quota headers.

        ``units`` may be fewer than reserved (never more: reserve the count before running); the difference goes
        back to the lease."""
        if not self.enabled or ticket.caller is None:
            return {}
        if ticket.replay:
            self._metric("BilledRequests", 0)
            return {REPLAYED_HEADER: "true"}
        reservation = ticket.reservation
        if reservation is None or units > reservation.units:
            self.release(ticket)
            self.reserve(ticket, units)
            reservation = ticket.reservation
        elif units < reservation.units:  # the rest goes back now; the reservation is what this event spends
            self.leases.release(dataclasses.replace(reservation, units=reservation.units - units))
            reservation = ticket.reservation = dataclasses.replace(reservation, units=units)
        caller = ticket.caller
        event = UsageEvent(
            request_id=ticket.request_id,
            tenant_id=caller.tenant_id,
            key_prefix=caller.key_prefix,
            model=manifest.name,
            version=manifest.version,
            task=manifest.task,
            units=units,
            compute_ms=compute_ms,
            time=self.clock(),
            window=reservation.window,
            fingerprint=ticket.fingerprint,
            batch=ticket.batch,
        )
        if self.metrics is not None:
            self._dimensions({"model": manifest.name, "task": manifest.task})
        billed, first = self.meter.put_event(event)
        if not billed and first is not None and first.fingerprint and first.fingerprint != ticket.fingerprint:
            if ticket.keyed:
                self.release(ticket)
                raise IdempotencyKeyReused()
            # The same gateway request id with another request can only be a replayed or forged event, never a
            # retry: it is billed as the different request it is (a retry of it finds this id), never free.
            event = dataclasses.replace(event, request_id=f"{ticket.request_id}.{ticket.fingerprint[:16]}")
            billed, first = self.meter.put_event(event)
        ticket.reservation = None
        if not billed:
            self.leases.release(reservation)  # billed before: the units this attempt set aside were not spent
            self.logger.info("retry of a billed request: not billed again", extra={"request_id": ticket.request_id})
        self._metric("BilledRequests", 1 if billed else 0)
        self._metric("BilledUnits", units if billed else 0)
        self._metric("ComputeMilliseconds", compute_ms, "Milliseconds")
        status = reservation.status(event.time)
        return status.headers() if billed else {**status.headers(), REPLAYED_HEADER: "true"}

    def charge(
        self,
        caller: Caller | None,
        request_id: str,
        manifest: Manifest,
        units: int,
        compute_ms: float,
        before: QuotaStatus | None = None,
        batch: bool = False,
    ) -> dict[str, str]:
        """Reserve and bill in one step, for work whose units are known only once it ran (batch parts, a heavy
        model's answer): QuotaExceeded if they do not fit, and then the work is not billed. ``batch``: a Batch API
        part, priced at the plan's batch price (maas.metering.pricing)."""
        ticket = Ticket(caller, request_id, "", batch=batch)
        self.reserve(ticket, units)
        return self.commit(ticket, manifest, units, compute_ms)

    def failed(self, caller: Caller | None, err: ApiError, request_id: str | None = None) -> dict[str, str]:
        """Count a refused request apart (not billed); quota errors carry the quota headers."""
        self._metric("QuotaRejections" if isinstance(err, QuotaExceeded) else f"Failed{err.status // 100}xx", 1)
        if self.enabled and caller is not None:
            try:
                self.meter.count_failure(caller.tenant_id, err.status, request_id or f"local-{time.time_ns()}")
            except Exception:  # counting a failure must never turn a 4xx into a 500
                self.logger.exception("could not count a failed request")
        return {**err.headers, **(err.quota.headers() if isinstance(err, QuotaExceeded) else {})}

    def quota_status(self, caller: Caller) -> QuotaStatus:
        """What the month's quota looks like from here (the aggregates, which trail by under a minute)."""
        return self.meter.quota(caller.tenant_id, self.plans[caller.plan].monthly_quota, self.clock())
