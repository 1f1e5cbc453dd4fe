"""The usage table (maas.tables.USAGE): usage events, quota leases, aggregates, failure counts.

Design and failure analysis: maas/metering/README.md. In short, a billed call writes ONE item of its own:
  EVENT#<request id> / EVENT          put only if absent (the request's fingerprint inside): billed once;
                                      a retry finds it, another request under the same key is refused.
Quota is reserved in leases, a block of units per container, granted by one conditional update of
  TENANT#<t> / QUOTA#<yyyy-mm>        leased (units granted this month), g#<window> granted in a window,
                                      u#<window> used in it (added by the aggregator)
and the aggregates are written by the aggregator from the table's stream, a batch at a time:
  TENANT#<t> / MONTH#<yyyy-mm>        consumed, and per model@version units#m, requests#m, compute_ms#m
  TENANT#<t> / DAY#<yyyy-mm-dd>       per model@version units#m, requests#m, compute_ms#m
  TENANT#<t> / ERRORS#<yyyy-mm-dd>    status_4xx, status_5xx (from FAIL#<request id> items: not billed)
  SHARD#<stream shard> / CHECKPOINT   the last stream sequence number applied (same transaction)
No item is written per call but the call's own; the aggregates always equal the sum of the events.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from maas.errors import ApiError, TooManyRequests

EVENT_SK = "EVENT"
FAIL_SK = "FAIL"
CHECKPOINT_SK = "CHECKPOINT"
# Stream sequence numbers are decimal strings of up to 40 digits: padded, they compare as strings.
SEQUENCE_DIGITS = 40


@dataclass(frozen=True)
class UsageEvent:
    """One billed call. ``window`` is the lease window its units came from; ``fingerprint`` binds the request id
    (an Idempotency-Key's) to the request it was first used with."""

    request_id: str
    tenant_id: str
    key_prefix: str
    model: str
    version: str
    task: str
    units: int
    compute_ms: float
    time: float  # epoch seconds
    window: int = 0
    fingerprint: str = ""
    batch: bool = False  # served through the Batch API: priced at the plan's batch price

    @property
    def model_id(self) -> str:
        return f"{self.model}@{self.version}"

    def iso_time(self) -> str:
        return datetime.fromtimestamp(self.time, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def item(self) -> dict:
        return {
            "pk": {"S": f"EVENT#{self.request_id}"},
            "sk": {"S": EVENT_SK},
            "request_id": {"S": self.request_id},
            "tenant_id": {"S": self.tenant_id},
            "key_prefix": {"S": self.key_prefix},
            "model": {"S": self.model},
            "version": {"S": self.version},
            "task": {"S": self.task},
            "units": _n(self.units),
            "compute_ms": _n(round(self.compute_ms, 3)),
            "time": _n(round(self.time, 3)),
            "window": _n(self.window),
            "fingerprint": {"S": self.fingerprint or "-"},
            **({"batch": {"BOOL": True}} if self.batch else {}),
        }

    @classmethod
    def from_item(cls, item: dict) -> UsageEvent:
        return cls(
            request_id=item["request_id"]["S"],
            tenant_id=item["tenant_id"]["S"],
            key_prefix=item["key_prefix"]["S"],
            model=item["model"]["S"],
            version=item["version"]["S"],
            task=item["task"]["S"],
            units=int(item["units"]["N"]),
            compute_ms=float(item["compute_ms"]["N"]),
            time=float(item["time"]["N"]),
            window=int(item.get("window", {"N": "0"})["N"]),
            fingerprint=_unset(item.get("fingerprint", {"S": "-"})["S"]),
            batch=item.get("batch", {}).get("BOOL", False),
        )


@dataclass(frozen=True)
class QuotaStatus:
    limit: int
    consumed: int
    reset: datetime  # start of the next month, UTC

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.consumed)

    def headers(self) -> dict[str, str]:
        return {
            "X-Quota-Limit": str(self.limit),
            "X-Quota-Remaining": str(self.remaining),
            "X-Quota-Reset": self.reset.isoformat().replace("+00:00", "Z"),
        }


class QuotaExceeded(TooManyRequests):
    code = "quota_exceeded"

    def __init__(self, status: QuotaStatus, units: int):
        super().__init__(
            f"Monthly quota exceeded: this request needs {units} units and {status.remaining} of {status.limit} "
            f"remain; the quota resets at {status.headers()['X-Quota-Reset']}."
        )
        self.quota = status


class IdempotencyKeyReused(ApiError):
    """The Idempotency-Key was first used with another request (route, model or body): never served."""

    status = 422
    type = "invalid_request_error"
    code = "idempotency_key_reused"

    def __init__(self):
        super().__init__(
            "This Idempotency-Key was already used with a different request (route, model or body) in the last "
            "24 hours. Send a new key for a new request; a retry must repeat the original request exactly."
        )


def month_of(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m")


def day_of(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def next_month(ts: float) -> datetime:
    d = datetime.fromtimestamp(ts, UTC)
    return datetime(d.year + (d.month == 12), d.month % 12 + 1, 1, tzinfo=UTC)


def tenant_pk(tenant_id: str) -> dict:
    return {"S": f"TENANT#{tenant_id}"}


def quota_key(tenant_id: str, month: str) -> dict:
    return {"pk": tenant_pk(tenant_id), "sk": {"S": f"QUOTA#{month}"}}


def padded(sequence: str) -> str:
    return sequence.zfill(SEQUENCE_DIGITS)


def _unset(value: str) -> str:
    return "" if value == "-" else value


def _n(value) -> dict:
    return {"N": str(value)}


class Meter:
    """The usage table's items. ``client`` is a boto3 DynamoDB client."""

    def __init__(self, client, usage_table: str):
        self.ddb = client
        self.table = usage_table

    # -- the request path: one write per call, plus one per lease ------------------------------------------

    def put_event(self, event: UsageEvent) -> tuple[bool, UsageEvent | None]:
        """Write the call's usage event once. (True, None): billed now. (False, first): this request id was
        billed before; ``first`` is the stored event (its fingerprint tells a retry from a reuse)."""
        try:
            self.ddb.put_item(
                TableName=self.table,
                Item=event.item(),
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return True, None
        except self.ddb.exceptions.ConditionalCheckFailedException as exc:
            old = exc.response.get("Item")
            return False, (UsageEvent.from_item(old) if old else self.find_event(event.request_id))

    def find_event(self, request_id: str) -> UsageEvent | None:
        """The stored event of ``request_id``, if any (an Idempotency-Key's pre-check: 0.5 RRU)."""
        item = self.ddb.get_item(
            TableName=self.table,
            Key={"pk": {"S": f"EVENT#{request_id}"}, "sk": {"S": EVENT_SK}},
        ).get("Item")
        return UsageEvent.from_item(item) if item else None

    def grant(self, tenant_id: str, month: str, window: int, units: int, limit: int) -> int | None:
        """Lease ``units`` of the month's quota to a container: the month's leased total after the grant, or None
        when they do not fit (leased + units > limit). One conditional UpdateItem."""
        try:
            out = self.ddb.update_item(
                TableName=self.table,
                Key=quota_key(tenant_id, month),
                UpdateExpression="ADD #l :u, #g :u",
                ConditionExpression="attribute_not_exists(#l) OR #l <= :room",
                ExpressionAttributeNames={"#l": "leased", "#g": f"g#{window}"},
                ExpressionAttributeValues={":u": _n(units), ":room": _n(limit - units)},
                ReturnValues="UPDATED_NEW",
            )
        except self.ddb.exceptions.ConditionalCheckFailedException:
            return None
        return int(out["Attributes"]["leased"]["N"])

    def quota_item(self, tenant_id: str, month: str) -> dict[str, int]:
        """The month's lease counters: leased, g#<window>, u#<window> (strongly consistent)."""
        item = self.ddb.get_item(TableName=self.table, Key=quota_key(tenant_id, month), ConsistentRead=True).get(
            "Item", {}
        )
        return {k: int(v["N"]) for k, v in item.items() if "N" in v}

    def settle(self, tenant_id: str, month: str, window: int, granted: int, used: int) -> bool:
        """Give back what a closed window's leases did not use: leased -= granted - used, once (the condition
        fails if another container settled the window first)."""
        try:
            self.ddb.update_item(
                TableName=self.table,
                Key=quota_key(tenant_id, month),
                UpdateExpression="ADD #l :back REMOVE #g, #u",
                ConditionExpression="#g = :g AND (attribute_not_exists(#u) OR #u = :used)",
                ExpressionAttributeNames={"#l": "leased", "#g": f"g#{window}", "#u": f"u#{window}"},
                ExpressionAttributeValues={":back": _n(used - granted), ":g": _n(granted), ":used": _n(used)},
            )
            return True
        except self.ddb.exceptions.ConditionalCheckFailedException:
            return False

    def count_failure(self, tenant_id: str, status: int, request_id: str, now: float | None = None) -> None:
        """Record a failed (not billed) request as its own item; the aggregator counts it per day."""
        now = time.time() if now is None else now
        self.ddb.put_item(
            TableName=self.table,
            Item={
                "pk": {"S": f"FAIL#{request_id}"},
                "sk": {"S": FAIL_SK},
                "tenant_id": {"S": tenant_id},
                "status": _n(status),
                "time": _n(round(now, 3)),
            },
        )

    # -- the aggregator: a batch of stream records at a time -----------------------------------------------

    def checkpoint(self, shard_id: str) -> str:
        """The padded sequence number of the last record of ``shard_id`` applied ("" before the first)."""
        item = self.ddb.get_item(
            TableName=self.table,
            Key={"pk": {"S": f"SHARD#{shard_id}"}, "sk": {"S": CHECKPOINT_SK}},
            ConsistentRead=True,
        ).get("Item")
        return item["seq"]["S"] if item else ""

    def apply(self, shard_id: str, after: str, last: str, updates: list[dict]) -> bool:
        """Apply aggregate ``updates`` (boto3 Update entries) and move the shard's checkpoint from ``after`` to
        ``last`` in one transaction. False when the checkpoint had moved (those records were applied before)."""
        checkpoint = {
            "Update": {
                "TableName": self.table,
                "Key": {"pk": {"S": f"SHARD#{shard_id}"}, "sk": {"S": CHECKPOINT_SK}},
                "UpdateExpression": "SET #s = :last",
                "ConditionExpression": "attribute_not_exists(#s)" if not after else "#s = :after",
                "ExpressionAttributeNames": {"#s": "seq"},
                "ExpressionAttributeValues": {":last": {"S": last}, **({":after": {"S": after}} if after else {})},
            }
        }
        items = [{"Update": {"TableName": self.table, **u}} for u in updates] + [checkpoint]
        try:
            self.ddb.transact_write_items(TransactItems=items)
            return True
        except self.ddb.exceptions.TransactionCanceledException as exc:
            reasons = [r.get("Code", "None") for r in exc.response.get("CancellationReasons", [])]
            if reasons and reasons[-1] == "ConditionalCheckFailed":
                return False
            raise

    # -- reads ---------------------------------------------------------------------------------------------

    def quota(self, tenant_id: str, limit: int, now: float | None = None) -> QuotaStatus:
        """The month's quota as billed so far (the aggregated events: exact, at most a minute behind)."""
        now = time.time() if now is None else now
        item = self.ddb.get_item(
            TableName=self.table,
            Key={"pk": tenant_pk(tenant_id), "sk": {"S": f"MONTH#{month_of(now)}"}},
            ConsistentRead=True,
            ProjectionExpression="#c",
            ExpressionAttributeNames={"#c": "consumed"},
        ).get("Item", {})
        return QuotaStatus(limit, int(item.get("consumed", {"N": "0"})["N"]), next_month(now))

    def _query(self, **kwargs) -> list[dict]:
        items = []
        while True:
            page = self.ddb.query(TableName=self.table, **kwargs)
            items += page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _between(self, tenant_id: str, prefix: str, start_day: str, end_day: str) -> list[dict]:
        return self._query(
            KeyConditionExpression="pk = :pk AND sk BETWEEN :a AND :b",
            ExpressionAttributeValues={
                ":pk": tenant_pk(tenant_id),
                ":a": {"S": f"{prefix}{start_day}"},
                ":b": {"S": f"{prefix}{end_day}"},
            },
            ConsistentRead=True,
        )

    def daily(self, tenant_id: str, start_day: str, end_day: str) -> list[dict]:
        """Per-day, per-model aggregates between two days (inclusive, YYYY-MM-DD)."""
        return [row for item in self._between(tenant_id, "DAY#", start_day, end_day) for row in _rows(item, "DAY#")]

    def monthly(self, tenant_id: str, month: str) -> list[dict]:
        items = self._query(
            KeyConditionExpression="pk = :pk AND sk = :m",
            ExpressionAttributeValues={":pk": tenant_pk(tenant_id), ":m": {"S": f"MONTH#{month}"}},
            ConsistentRead=True,
        )
        return [row for item in items for row in _rows(item, "MONTH#")]

    def failures(self, tenant_id: str, start_day: str, end_day: str) -> list[dict]:
        """Per-day counts of failed (unbilled) requests by status class."""
        return [
            {
                "day": i["sk"]["S"].removeprefix("ERRORS#"),
                **{k: int(v["N"]) for k, v in i.items() if k.startswith("status_")},
            }
            for i in self._between(tenant_id, "ERRORS#", start_day, end_day)
        ]

    def events(self, tenant_id: str, start: float, end: float) -> list[UsageEvent]:
        """The tenant's usage events with start <= time < end, oldest first.

        A Scan, not an index: an index would cost a second write on every call, while this runs once per
        export (0.5 RRU per 4 KB of events scanned: about $0.01 per million events)."""
        kwargs = {
            "TableName": self.table,
            "FilterExpression": "sk = :e AND tenant_id = :t AND #tm >= :a AND #tm < :b",
            "ExpressionAttributeNames": {"#tm": "time"},
            "ExpressionAttributeValues": {
                ":e": {"S": EVENT_SK},
                ":t": {"S": tenant_id},
                ":a": _n(start),
                ":b": _n(end),
            },
        }
        items = []
        while True:
            page = self.ddb.scan(**kwargs)
            items += page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted((UsageEvent.from_item(i) for i in items), key=lambda e: (e.time, e.request_id))


def _rows(item: dict, prefix: str) -> list[dict]:
    period = item["sk"]["S"].removeprefix(prefix)
    models = {k.split("#", 1)[1] for k in item if k.startswith("units#")}
    return [
        {
            "period": period,
            "model": m,
            "units": int(item[f"units#{m}"]["N"]),
            "requests": int(item[f"requests#{m}"]["N"]),
            "compute_ms": float(item[f"compute_ms#{m}"]["N"]),
        }
        for m in sorted(models)
    ]
