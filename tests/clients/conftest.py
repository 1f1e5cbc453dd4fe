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

import pytest  # noqa: E402

from tests.served import CLASSIFIER, EMBEDDING_MODEL, HEAVY_MODEL, IMAGE_MODEL, Served, serve  # noqa: E402, F401

# A client's vector against the direct handler's: the same int8 graph answers both, so they differ only by the
# JSON/base64 round trip (9 decimals in JSON, exact float32 in base64) and batch composition (padding).
VECTOR_ATOL = 1e-5


@pytest.fixture(scope="package")
def served() -> Served:
    """One `maas serve` for the whole suite, with every built package (the heavy model in its endpoint process).
    Package scope: `start` sets the AWS variables process-wide until it stops, so it must stop before the other
    suites run."""
    yield from serve("Client conformance")
