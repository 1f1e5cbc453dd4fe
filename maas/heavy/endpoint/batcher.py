"""Dynamic batching: concurrent requests share one ``session.run`` instead of queueing for the model one by one.

Greedy, with no added wait by default: a request that finds the model idle runs at once, alone; requests that
arrive while a batch runs are taken together as the next batch (up to ``max_texts``), so batches grow with the
load and a lone request pays nothing. ``max_wait_s`` > 0 holds the first request of a batch that long for
company (throughput at a latency cost; off by default). The batch itself goes through the embedder's own
length bucketing, so merging short and long requests wastes no padding.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from maas.inference.embedder import Embeddings, TextEmbedder


@dataclass
class _Pending:
    texts: list[str]
    encodings: list
    done: threading.Event = field(default_factory=threading.Event)
    result: Embeddings | None = None
    error: BaseException | None = None


@dataclass
class BatcherStats:
    batches: int = 0
    requests: int = 0
    texts: int = 0
    largest_batch_requests: int = 0

    def as_dict(self) -> dict:
        return {
            "batches": self.batches,
            "requests": self.requests,
            "texts": self.texts,
            "largest_batch_requests": self.largest_batch_requests,
            "mean_requests_per_batch": round(self.requests / self.batches, 3) if self.batches else 0.0,
        }


class DynamicBatcher:
    """One worker thread owns the model; callers hand it their tokenized texts and wait for their rows."""

    def __init__(self, embedder: TextEmbedder, max_texts: int = 256, max_wait_s: float = 0.0):
        self.embedder = embedder
        self.max_texts = max_texts
        self.max_wait_s = max_wait_s
        self.stats = BatcherStats()
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._worker = threading.Thread(target=self._loop, name="maas-batcher", daemon=True)
        self._worker.start()

    def embed(self, texts: list[str], encodings=None) -> Embeddings:
        """Same contract as ``TextEmbedder.embed``; blocks until this request's rows are computed."""
        if encodings is None:
            encodings = self.embedder.tokenize(texts)
        item = _Pending(texts, list(encodings))
        self._queue.put(item)
        item.done.wait()
        if item.error is not None:
            raise item.error
        return item.result

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join(timeout=5)

    def _collect(self, first: _Pending) -> tuple[list[_Pending], bool]:
        batch, count, stop = [first], len(first.texts), False
        deadline = time.monotonic() + self.max_wait_s
        while count < self.max_texts:
            try:
                wait = deadline - time.monotonic()
                item = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                stop = True
                break
            batch.append(item)
            count += len(item.texts)
        return batch, stop

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stop = self._collect(first)
            self._run(batch)
            if stop:
                return

    def _run(self, batch: list[_Pending]) -> None:
        texts = [t for item in batch for t in item.texts]
        encodings = [e for item in batch for e in item.encodings]
        try:
            merged = self.embedder.embed(texts, encodings)
        except BaseException as exc:  # every waiting caller gets the error; the worker lives on
            for item in batch:
                item.error = exc
                item.done.set()
            return
        s = self.stats
        s.batches += 1
        s.requests += len(batch)
        s.texts += len(texts)
        s.largest_batch_requests = max(s.largest_batch_requests, len(batch))
        start = 0
        for item in batch:
            end = start + len(item.texts)
            item.result = Embeddings(
                np.ascontiguousarray(merged.vectors[start:end]),
                merged.token_counts[start:end],
                merged.truncated[start:end],
            )
            start = end
            item.done.set()


class BatchingEmbedder:
    """A TextEmbedder whose ``embed`` goes through a DynamicBatcher; everything else (tokenizer, session,
    limits) is the wrapped embedder's."""

    def __init__(self, embedder: TextEmbedder, max_texts: int = 256, max_wait_s: float = 0.0):
        self._embedder = embedder
        self.batcher = DynamicBatcher(embedder, max_texts, max_wait_s)

    def embed(self, texts: list[str], encodings=None) -> Embeddings:
        return self.batcher.embed(texts, encodings)

    def __getattr__(self, name: str):
        return getattr(self._embedder, name)
