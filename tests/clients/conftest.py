"""The client conformance suite's one `maas serve` (127.0.0.1, started once per session) and the answers the real
handlers give directly, which each client's answer is compared with.

Nothing here reaches past 127.0.0.1: the Hugging Face hub, tiktoken's vocabulary download and litellm's remote
price map are switched off before any client is imported (see README, "Clients").
"""

from __future__ import annotations

import os

# Before the clients import: litellm reads its model cost map at import (LITELLM_LOCAL_MODEL_COST_MAP: the copy in
# the package, no download). huggingface_hub's InferenceClient(base_url=...) posts to that URL and asks the hub
# nothing (HF_HUB_OFFLINE would refuse even 127.0.0.1). No test needs tiktoken: an empty cache dir makes any use of
# it fail at once instead of trying the network.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["NO_PROXY"] = "127.0.0.1,localhost"
os.environ.setdefault("TIKTOKEN_CACHE_DIR", "/nonexistent-tiktoken-cache")

from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import requests  # noqa: E402

from maas.tools import paths  # noqa: E402
from maas.tools.local.server import start  # noqa: E402

EMBEDDING_MODEL = "all-minilm-l6-v2"
HEAVY_MODEL = "all-minilm-l6-v2-fp32"
CLASSIFIER = "ticket-intents"
IMAGE_MODEL = "digits-cnn"
# A client's vector against the direct handler's: the same int8 graph answers both, so they differ only by the
# JSON/base64 round trip (9 decimals in JSON, exact float32 in base64) and batch composition (padding).
VECTOR_ATOL = 1e-5


@dataclass(frozen=True)
class Served:
    """The running service: its base URL and the demo tenant's key."""

    base_url: str
    key: str

    def post(self, path: str, **kwargs) -> requests.Response:
        """A plain HTTP call with the key (the reference the clients' answers are compared with)."""
        headers = {"Authorization": f"Bearer {self.key}", **kwargs.pop("headers", {})}
        return requests.post(self.base_url + path, headers=headers, timeout=60, **kwargs)

    def get(self, path: str) -> requests.Response:
        return requests.get(self.base_url + path, headers={"Authorization": f"Bearer {self.key}"}, timeout=60)

    def vectors(self, texts: list[str], model: str = EMBEDDING_MODEL) -> np.ndarray:
        """The embeddings the handler answers for ``texts``, in input order."""
        response = self.post("/v1/embeddings", json={"input": texts, "model": model})
        assert response.status_code == 200, response.text
        return np.array([d["embedding"] for d in sorted(response.json()["data"], key=lambda d: d["index"])])


@pytest.fixture(scope="package")
def served() -> Served:
    """One `maas serve` for the whole suite, with every built package (the heavy model in its endpoint process).
    Package scope: `start` sets the AWS variables process-wide until it stops, so it must stop before the other
    suites run."""
    for model in (EMBEDDING_MODEL, CLASSIFIER, IMAGE_MODEL, HEAVY_MODEL):
        if not (paths.model_dir(model) / "manifest.json").is_file():
            pytest.skip(f"models/{model} is not built (scripts/test.sh builds every package)")
    running = start(host="127.0.0.1", port=0, model_dir=paths.model_dir(EMBEDDING_MODEL))
    yield Served(running.base_url, own_key(running.moto_url))
    running.stop()


def own_key(moto_url: str) -> str:
    """A key of a tenant of the suite's own: the sample events bill the "demo" tenant under another plan, and one
    tenant's quota leases are counted against whatever plan its next request comes with."""
    from maas.tools.local.server import new_tenant

    return new_tenant(moto_url, "Client conformance", "pro")[1]
