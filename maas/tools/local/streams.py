"""A DynamoDB stream event source, locally: poll the emulator's stream and hand each shard's new records to a
function the way Lambda's event source mapping (with a tumbling window) does: ``{"Records": [...], "shardId"}``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from maas.metering.store import EVENT_SK, FAIL_SK

logger = logging.getLogger(__name__)
BATCH_SIZE = 1000  # records per invocation, as the deployed event source mapping
# What the deployed event source mapping's filter lets through: usage events and failures, not the aggregates.
BILLABLE_SK = {EVENT_SK, FAIL_SK}


def billable(record: dict) -> bool:
    return (record.get("dynamodb", {}).get("NewImage") or {}).get("sk", {}).get("S") in BILLABLE_SK


class StreamDriver:
    """Polls one table's stream; ``drain()`` delivers everything written so far (tests call it directly)."""

    def __init__(
        self, ddb, streams, table: str, handler: Callable[[dict, object], object], start_at: str = "TRIM_HORIZON"
    ):
        """``start_at``: TRIM_HORIZON delivers the stream's whole history; LATEST (with ``position()`` called before
        any write to deliver) only what comes after, as a new event source mapping on a new table does."""
        self.ddb, self.streams, self.table, self.handler = ddb, streams, table, handler
        self.start_at = start_at
        self.arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
        self._iterators: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _shards(self) -> list[str]:
        return [s["ShardId"] for s in self.streams.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]]

    def position(self) -> None:
        """Place an iterator on every shard now (where ``start_at`` says)."""
        with self._lock:
            self._position()

    def _position(self) -> list[str]:
        shards = self._shards()
        for shard in shards:
            if shard not in self._iterators:
                self._iterators[shard] = self.streams.get_shard_iterator(
                    StreamArn=self.arn, ShardId=shard, ShardIteratorType=self.start_at
                )["ShardIterator"]
        return shards

    def drain(self) -> int:
        """Deliver every record written so far, in shard order; return how many were delivered."""
        delivered = 0
        with self._lock:
            for shard in self._position():
                while True:
                    page = self.streams.get_records(ShardIterator=self._iterators[shard], Limit=BATCH_SIZE)
                    records = [dict(r, eventSourceARN=self.arn) for r in page["Records"] if billable(r)]
                    if records:  # the iterator moves on only once the batch is handled: a failure is retried
                        self.handler({"Records": records, "shardId": shard, "eventSourceARN": self.arn}, None)
                        delivered += len(records)
                    self._iterators[shard] = page["NextShardIterator"]
                    if not page["Records"]:
                        break
        return delivered

    def start(self, interval_s: float = 1.0) -> StreamDriver:
        """Deliver in the background every ``interval_s`` (``maas serve``: usage visible within seconds)."""

        def loop():
            while not self._stop.wait(interval_s):
                try:
                    self.drain()
                except Exception:  # a failed delivery is retried at the next tick, as Lambda retries a batch
                    logger.exception("stream delivery failed; retrying")

        self._thread = threading.Thread(target=loop, name=f"stream-{self.table}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
