"""Exactly-once usage metering and atomic monthly quotas in DynamoDB (one table, see maas.tables).

A billable call is one TransactWriteItems of three items:
  EVENT#<request id>              put, only if absent            -> a retried request is billed once
  TENANT#<t> / MONTH#<yyyy-mm>    ADD consumed (+ per-model units, requests, compute_ms),
                                  only if consumed + units <= quota -> concurrency never overshoots
  TENANT#<t> / DAY#<yyyy-mm-dd>   ADD per-model units, requests, compute_ms
so the aggregates always equal the sum of the events. Failed requests are not billed; they are
counted apart on TENANT#<t> / ERRORS#<yyyy-mm-dd>.
"""

from __future__ import annotations

import dataclasses
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from maas.errors import TooManyRequests

MAX_ATTEMPTS = 6  # transaction conflicts under contention on the month item are retried with jittered backoff


@dataclass(frozen=True)
class UsageEvent:
    request_id: str
    tenant_id: str
    key_prefix: str
    model: str
    version: str
    task: str
    units: int
    compute_ms: float
    time: float  # epoch seconds

    @property
    def model_id(self) -> str:
        return f"{self.model}@{self.version}"

    def iso_time(self) -> str:
        return datetime.fromtimestamp(self.time, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

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


def month_of(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m")


def day_of(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def next_month(ts: float) -> datetime:
    d = datetime.fromtimestamp(ts, UTC)
    return datetime(d.year + (d.month == 12), d.month % 12 + 1, 1, tzinfo=UTC)


def tenant_pk(tenant_id: str) -> dict:
    return {"S": f"TENANT#{tenant_id}"}


def _n(value) -> dict:
    return {"N": str(value)}


class Meter:
    """Usage events, aggregates and quotas. ``client`` is a boto3 DynamoDB client."""

    def __init__(self, client, usage_table: str):
        self.ddb = client
        self.table = usage_table

    def quota(self, tenant_id: str, limit: int, now: float | None = None) -> QuotaStatus:
        """The tenant's quota state this month (one strongly consistent read)."""
        now = time.time() if now is None else now
        item = self.ddb.get_item(
            TableName=self.table,
            Key={"pk": tenant_pk(tenant_id), "sk": {"S": f"MONTH#{month_of(now)}"}},
            ConsistentRead=True,
            ProjectionExpression="#c",
            ExpressionAttributeNames={"#c": "consumed"},
        ).get("Item", {})
        return QuotaStatus(limit, int(item.get("consumed", {"N": "0"})["N"]), next_month(now))

    def record(self, event: UsageEvent, quota_limit: int) -> tuple[bool, QuotaStatus | None]:
        """Bill ``event`` exactly once within the quota. Returns (billed now, quota after, when known).

        (False, None) means this request id was billed before: a retry, not billed again.
        Raises QuotaExceeded when the units do not fit in what remains of the month's quota.
        """
        # One timestamp, rounded as stored, decides the event's month, day and index key alike.
        event = dataclasses.replace(event, time=round(event.time, 3))
        reset = next_month(event.time)
        room = quota_limit - event.units
        if room < 0:
            raise QuotaExceeded(
                QuotaStatus(quota_limit, self.quota(event.tenant_id, quota_limit, event.time).consumed, reset),
                event.units,
            )
        names = {
            "#u": f"units#{event.model_id}",
            "#r": f"requests#{event.model_id}",
            "#ms": f"compute_ms#{event.model_id}",
        }
        values = {":u": _n(event.units), ":one": _n(1), ":ms": _n(round(event.compute_ms, 3))}
        items = [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": {
                        "pk": {"S": f"EVENT#{event.request_id}"},
                        "sk": {"S": "EVENT"},
                        "gsi1pk": tenant_pk(event.tenant_id),
                        "gsi1sk": {"S": f"{event.iso_time()}#{event.request_id}"},
                        "request_id": {"S": event.request_id},
                        "tenant_id": {"S": event.tenant_id},
                        "key_prefix": {"S": event.key_prefix},
                        "model": {"S": event.model},
                        "version": {"S": event.version},
                        "task": {"S": event.task},
                        "units": _n(event.units),
                        "compute_ms": _n(round(event.compute_ms, 3)),
                        "time": _n(event.time),
                    },
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {
                "Update": {
                    "TableName": self.table,
                    "Key": {"pk": tenant_pk(event.tenant_id), "sk": {"S": f"MONTH#{month_of(event.time)}"}},
                    "UpdateExpression": "ADD #c :u, #u :u, #r :one, #ms :ms",
                    "ConditionExpression": "attribute_not_exists(#c) OR #c <= :room",
                    "ExpressionAttributeNames": {**names, "#c": "consumed"},
                    "ExpressionAttributeValues": {**values, ":room": _n(room)},
                }
            },
            {
                "Update": {
                    "TableName": self.table,
                    "Key": {"pk": tenant_pk(event.tenant_id), "sk": {"S": f"DAY#{day_of(event.time)}"}},
                    "UpdateExpression": "ADD #u :u, #r :one, #ms :ms",
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": values,
                }
            },
        ]
        for attempt in range(MAX_ATTEMPTS):
            try:
                self.ddb.transact_write_items(TransactItems=items)
                return True, None
            except self.ddb.exceptions.TransactionCanceledException as exc:
                reasons = [r.get("Code", "None") for r in exc.response.get("CancellationReasons", [])]
                if reasons and reasons[0] == "ConditionalCheckFailed":
                    return False, None  # billed before: this is a retry of the same request id
                if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                    raise QuotaExceeded(self.quota(event.tenant_id, quota_limit, event.time), event.units) from None
                if attempt == MAX_ATTEMPTS - 1 or not any(
                    r in ("TransactionConflict", "ThrottlingError") for r in reasons
                ):
                    raise
            except self.ddb.exceptions.TransactionConflictException:
                if attempt == MAX_ATTEMPTS - 1:
                    raise
            time.sleep(random.uniform(0, 0.01 * 2**attempt))
        raise RuntimeError("unreachable")

    def count_failure(self, tenant_id: str, status: int, now: float | None = None) -> None:
        """Count a failed (not billed) request apart: one plain update, no transaction."""
        now = time.time() if now is None else now
        self.ddb.update_item(
            TableName=self.table,
            Key={"pk": tenant_pk(tenant_id), "sk": {"S": f"ERRORS#{day_of(now)}"}},
            UpdateExpression="ADD #c :one",
            ExpressionAttributeNames={"#c": f"status_{status // 100}xx"},
            ExpressionAttributeValues={":one": _n(1)},
        )

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
        """The tenant's usage events with start <= time < end, oldest first."""
        lo = datetime.fromtimestamp(start, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        hi = datetime.fromtimestamp(end, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        items = self._query(
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :pk AND gsi1sk BETWEEN :a AND :b",
            ExpressionAttributeValues={":pk": tenant_pk(tenant_id), ":a": {"S": lo}, ":b": {"S": hi}},
        )
        events = [UsageEvent.from_item(i) for i in items]
        return [e for e in events if start <= e.time < end]


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
