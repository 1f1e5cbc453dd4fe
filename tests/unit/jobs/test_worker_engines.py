"""Which local package a batch job's model id runs on: the default, an embedding tier, or none (a clear refusal)."""

from __future__ import annotations

from maas.inference.package import Manifest, Quantization
from maas.jobs.worker import BatchWorker


def _manifest(name: str, dimensions: int) -> Manifest:
    return Manifest(
        name=name,
        version="1",
        task="embeddings",
        inputs=[],
        outputs=[],
        dimensions=dimensions,
        quantization=Quantization(method="none"),
        files={},
    )


def _worker() -> BatchWorker:
    exact, fast, static = object(), object(), object()
    return BatchWorker(
        embedder=exact,
        manifest=_manifest("all-minilm-l6-v2", 384),
        billing=None,
        jobs=None,
        tenants=None,
        s3=None,
        others=[(fast, _manifest("all-minilm-l6-v2-fast", 384)), (static, _manifest("all-minilm-l6-v2-static", 256))],
    )


def test_a_job_naming_a_tier_runs_on_that_tier_and_bills_it():
    worker = _worker()
    for model, dims in (("all-minilm-l6-v2-fast", 384), ("all-minilm-l6-v2-static@1", 256)):
        embedder, billed = worker.engine(model)
        assert billed.name == model.split("@")[0] and billed.dimensions == dims
        assert embedder is not worker.embedder
    assert worker.engine(None) == (worker.embedder, worker.manifest)
    assert worker.engine("all-minilm-l6-v2")[1].name == "all-minilm-l6-v2"


def test_a_model_not_served_here_has_no_engine():
    worker = _worker()
    assert not worker.serves("ticket-intents")
    assert not worker.serves("no-such-model")
