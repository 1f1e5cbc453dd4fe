"""`python -m maas.tools.bench.bodies`: what strict body decoding (maas.bodies.parse_json: pydantic's validation plus
the RFC 8259 checks) costs beside pydantic's validation alone, on bodies of the API's sizes. Interleaved rounds (the
machine is shared and noisy), medians, printed as ratios and added microseconds."""

from __future__ import annotations

import json
import statistics
import time

from maas.bodies import parse_json
from maas.schemas.embeddings import EmbeddingsRequest
from maas.schemas.rerank import RerankRequest
from maas.schemas.v2 import InferRequest


def bodies() -> dict[str, tuple[type, str]]:
    """name -> (request model, body text)."""
    tensor = {"datatype": "INT64", "shape": [512, 128], "data": [101] * (512 * 128)}
    return {
        "embeddings, 1 sentence": (
            EmbeddingsRequest,
            json.dumps({"model": "all-minilm-l6-v2", "input": "The quick brown fox jumps over the lazy dog"}),
        ),
        "embeddings, 512 x 60 words": (EmbeddingsRequest, json.dumps({"input": [" ".join(["word"] * 60)] * 512})),
        "rerank, 1000 documents": (RerankRequest, json.dumps({"query": "q", "documents": ["a document"] * 1000})),
        "v2 infer, 512 x 128 INT64 x 2": (
            InferRequest,
            json.dumps({"inputs": [{"name": n, **tensor} for n in ("input_ids", "attention_mask")]}),
        ),
    }


def _median_us(fn, n: int) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def main(rounds: int = 5) -> None:
    for name, (model, text) in bodies().items():
        n = 2000 if len(text) < 1000 else 30
        plain, strict = [], []
        for _ in range(rounds):
            plain.append(_median_us(lambda model=model, text=text: model.model_validate_json(text), n))
            strict.append(_median_us(lambda model=model, text=text: parse_json(text, model, 10**8), n))
        base, checked = statistics.median(plain), statistics.median(strict)
        print(
            f"{name:32s} {len(text):>9,d} B  pydantic {base:9.1f} us  strict {checked:9.1f} us  "
            f"ratio {checked / base:4.2f}  added {checked - base:8.1f} us"
        )


if __name__ == "__main__":
    main()
