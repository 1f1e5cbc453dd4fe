"""The aggregator: usage events and failures from the usage table's stream, summed into the aggregates.

Runs as the `aggregator` function on the table's DynamoDB stream (a tumbling window, so that each invocation
knows its shard); locally `maas serve` and the tests poll the emulator's stream and call the same code.

Exactly once: per shard, the records after the shard's checkpoint are summed and applied together with the
checkpoint's move, in one transaction conditioned on the checkpoint being where it was read. A batch delivered
twice, or a retry after a crash at any point, finds the checkpoint moved and applies nothing again.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

from maas.metering.store import EVENT_SK, FAIL_SK, Meter, UsageEvent, day_of, month_of, padded, tenant_pk

# TransactWriteItems takes at most 100 items: the checkpoint and 99 aggregates per transaction.
MAX_UPDATES = 99


@dataclass
class _Sums:
    """ADD deltas for one aggregate item."""

    key: dict
    add: dict[str, float] = field(default_factory=lambda: defaultdict(int))

    def update(self) -> dict:
        names = {f"#a{i}": name for i, name in enumerate(self.add)}
        values = {f":a{i}": {"N": str(round(v, 3))} for i, v in enumerate(self.add.values())}
        return {
            "Key": self.key,
            "UpdateExpression": "ADD " + ", ".join(f"#a{i} :a{i}" for i in range(len(self.add))),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }


def _contributions(image: dict) -> list[tuple[tuple[str, str], dict[str, float]]]:
    """(aggregate item, deltas) for one new stream image: a usage event or a failure; nothing for other items."""
    sk = image.get("sk", {}).get("S")
    if sk == EVENT_SK:
        e = UsageEvent.from_item(image)
        per_model = {
            f"units#{e.model_id}": e.units,
            f"requests#{e.model_id}": 1,
            f"compute_ms#{e.model_id}": e.compute_ms,
        }
        return [
            ((e.tenant_id, f"MONTH#{month_of(e.time)}"), {"consumed": e.units, **per_model}),
            ((e.tenant_id, f"DAY#{day_of(e.time)}"), per_model),
            ((e.tenant_id, f"QUOTA#{month_of(e.time)}"), {f"u#{e.window}": e.units}),
        ]
    if sk == FAIL_SK:
        ts, status = float(image["time"]["N"]), int(image["status"]["N"])
        return [((image["tenant_id"]["S"], f"ERRORS#{day_of(ts)}"), {f"status_{status // 100}xx": 1})]
    return []


def _billable(record: dict) -> bool:
    return record.get("eventName") == "INSERT" and bool(_contributions(record["dynamodb"].get("NewImage") or {}))


def chunks(records: list[dict]) -> list[tuple[str, list[tuple[tuple[str, str], dict]]]]:
    """Split records (in shard order) into runs touching at most MAX_UPDATES aggregate items each:
    [(the run's last padded sequence number, its contributions)]."""
    runs: list[tuple[str, list]] = []
    items: set = set()
    current: list = []
    last = ""
    for record in records:
        adds = _contributions(record["dynamodb"]["NewImage"]) if _billable(record) else []
        keys = {k for k, _ in adds}
        if current and len(items | keys) > MAX_UPDATES:
            runs.append((last, current))
            items, current = set(), []
        items |= keys
        current += adds
        last = padded(record["dynamodb"]["SequenceNumber"])
    if last:
        runs.append((last, current))
    return runs


class Aggregator:
    """Applies a shard's stream records to the aggregates exactly once."""

    def __init__(self, meter: Meter, logger: logging.Logger | None = None):
        self.meter = meter
        self.logger = logger or logging.getLogger(__name__)

    def __call__(self, event: dict, context=None) -> dict:
        """A Lambda DynamoDB-stream event of a tumbling window (it carries ``shardId``)."""
        applied = self.apply(event["shardId"], event.get("Records") or [])
        self.logger.info("aggregated", extra={"shard": event["shardId"], "records": applied})
        return {"state": {}}  # a tumbling window's state: the aggregates are persisted at every invocation

    def apply(self, shard_id: str, records: list[dict]) -> int:
        """Apply the records after the shard's checkpoint; return how many events and failures were applied now."""
        after = self.meter.checkpoint(shard_id)
        fresh = [r for r in records if padded(r["dynamodb"]["SequenceNumber"]) > after]
        applied = 0
        for last, contributions in chunks(fresh):
            sums: dict[tuple[str, str], _Sums] = {}
            for (tenant, sk), deltas in contributions:
                target = sums.setdefault((tenant, sk), _Sums({"pk": tenant_pk(tenant), "sk": {"S": sk}}))
                for name, value in deltas.items():
                    target.add[name] += value
            if not sums:  # nothing billable in the run (the stream also carries the aggregates' own writes)
                continue
            if not self.meter.apply(shard_id, after, last, [s.update() for s in sums.values()]):
                self.logger.info("records applied before: skipped", extra={"shard": shard_id})
                return applied
            applied += sum(1 for r in fresh if after < padded(r["dynamodb"]["SequenceNumber"]) <= last and _billable(r))
            after = last
        return applied
