"""Quota leases: each container reserves a block of a tenant's monthly quota and spends it locally.

The quota is never exceeded: every unit a request spends was granted by a conditional update that keeps the
month's leased total within the plan's quota. A lease is sized to about LEASE_SECONDS of this container's own
traffic for the tenant (at least 1/LEASE_FLOOR_SHARE of what is left to lease, never more than 1/LEASE_SHARE of
it), so grants are rare under load (one quota write per ~5 s per container) and shrink to exactly what a request
needs as the quota runs out.

Units granted but never spent (a container that stopped, a lease left at a window's end) come back when the
tenant runs short: windows closed for more than SETTLE_AFTER_S are settled from the quota item, where the
aggregator has added what each window really used. See maas/metering/README.md for the failure analysis.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from maas.metering.store import Meter, QuotaExceeded, QuotaStatus, month_of, next_month

WINDOW_S = 300  # a lease belongs to a 5-minute window; after it, its leftovers are left to settlement
LEASE_SECONDS = 5.0  # a grant covers about this long of the container's recent traffic for the tenant
LEASE_SHARE = 16  # a grant takes at most 1/16 of what remains to lease
# ... and at least 1/4096 of it (a tenant far from its quota needs no ramp-up: with 10 M units left a grant is
# ~2,400 units), which shrinks to exactly what a request needs as the quota runs out.
LEASE_FLOOR_SHARE = 4096
# A window's events are written within the function timeout of its end and aggregated within a minute of that;
# a window is settled only this long after it closed, so that what it used is fully counted.
SETTLE_AFTER_S = 900
MAX_GRANT_TRIES = 5


@dataclass(frozen=True)
class Reservation:
    """Units set aside for one request from this container's lease (nothing is written to reserve them)."""

    tenant_id: str
    month: str
    window: int
    units: int
    limit: int
    remaining: int  # what this container knows remains of the month's quota after this request

    def status(self, now: float) -> QuotaStatus:
        return QuotaStatus(self.limit, self.limit - self.remaining, next_month(now))


@dataclass
class _Lease:
    month: str
    window: int
    left: int = 0
    leased: int = 0  # the month's leased total at the last grant, as the quota item said
    spent: deque = field(default_factory=deque)  # (time, units) of recent requests, for the lease size


class QuotaLeases:
    """The quota leases of one container, shared by its threads."""

    def __init__(self, meter: Meter, clock: Callable[[], float] = time.time):
        self.meter = meter
        self.clock = clock
        self._leases: dict[str, _Lease] = {}
        self._lock = threading.Lock()

    def reserve(self, tenant_id: str, units: int, limit: int) -> Reservation:
        """Set ``units`` aside for a request, before it runs; QuotaExceeded if they do not fit in the month."""
        with self._lock:
            now = self.clock()
            month, window = month_of(now), int(now // WINDOW_S)
            lease = self._leases.get(tenant_id)
            if lease is None or (lease.month, lease.window) != (month, window):
                leased = lease.leased if lease is not None and lease.month == month else 0
                lease = self._leases[tenant_id] = _Lease(month, window, leased=leased)
            if units > limit:
                raise QuotaExceeded(QuotaStatus(limit, max(0, lease.leased - lease.left), next_month(now)), units)
            if lease.left < units:
                lease.left += self._grant(tenant_id, lease, units - lease.left, limit, now)
            lease.left -= units
            lease.spent.append((now, units))
            return Reservation(tenant_id, month, window, units, limit, limit - lease.leased + lease.left)

    def release(self, reservation: Reservation) -> None:
        """Give a failed request's units back to the lease they came from (if it is still this container's)."""
        with self._lock:
            lease = self._leases.get(reservation.tenant_id)
            if lease is not None and (lease.month, lease.window) == (reservation.month, reservation.window):
                lease.left += reservation.units

    def _desired(self, lease: _Lease, now: float) -> int:
        while lease.spent and lease.spent[0][0] < now - LEASE_SECONDS:
            lease.spent.popleft()
        return sum(u for _, u in lease.spent)

    def _grant(self, tenant_id: str, lease: _Lease, need: int, limit: int, now: float) -> int:
        """Lease at least ``need`` more units; QuotaExceeded when even that does not fit."""
        desired = self._desired(lease, now)
        room = limit - lease.leased  # as last seen: the first try is optimistic, a refusal reads the truth
        for _ in range(MAX_GRANT_TRIES):
            amount = max(need, min(max(desired, room // LEASE_FLOOR_SHARE), room // LEASE_SHARE))
            leased = self.meter.grant(tenant_id, lease.month, lease.window, amount, limit)
            if leased is not None:
                lease.leased = leased
                return amount
            leased = self._settle(tenant_id, lease.month, now)
            lease.leased = leased
            room = limit - leased
            if room < need:
                status = QuotaStatus(limit, limit - room - lease.left, next_month(now))
                raise QuotaExceeded(status, need + lease.left)
        raise QuotaExceeded(QuotaStatus(limit, limit - lease.left, next_month(now)), need + lease.left)

    def _settle(self, tenant_id: str, month: str, now: float) -> int:
        """Settle the month's closed windows; return the leased total after it."""
        item = self.meter.quota_item(tenant_id, month)
        leased = item.get("leased", 0)
        closed = int((now - SETTLE_AFTER_S) // WINDOW_S)  # windows before this one ended long enough ago
        windows = [int(name[2:]) for name in item if name.startswith("g#") and int(name[2:]) < closed]
        settled = [self.meter.settle(tenant_id, month, w, item[f"g#{w}"], item.get(f"u#{w}", 0)) for w in windows]
        if not all(settled):  # another container settled some first, or the aggregator moved on: read again
            return self.meter.quota_item(tenant_id, month).get("leased", 0)
        return leased - sum(item[f"g#{w}"] - item.get(f"u#{w}", 0) for w in windows)
