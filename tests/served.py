"""One `maas serve` for a test suite (127.0.0.1, the real handlers, the heavy model's endpoint process) and a tenant
of the suite's own: started once per suite by a fixture (tests/clients/conftest.py, the hostile-bodies table)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import requests

from maas.tools import paths

EMBEDDING_MODEL = "all-minilm-l6-v2"
HEAVY_MODEL = "all-minilm-l6-v2-fp32"
CLASSIFIER = "ticket-intents"
IMAGE_MODEL = "digits-cnn"


@dataclass(frozen=True)
class Served:
    """The running service: its base URL, the suite tenant's key, and (for billing checks) the emulator's URL and
    the tenant's id."""

    base_url: str
    key: str
    moto_url: str = ""
    tenant: str = ""
    running: object = None  # maas.tools.local.server.Running

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


def serve(suite: str) -> Iterator[Served]:
    """Start `maas serve` with every built package (skip when one is missing), yield it with a new tenant named
    ``suite`` on plan pro, stop it. Use it as a fixture body (`yield from serve("...")`): `start` sets the AWS
    variables process-wide until it stops, so a fixture scope must end before other suites run."""
    for model in (EMBEDDING_MODEL, CLASSIFIER, IMAGE_MODEL, HEAVY_MODEL):
        if not (paths.model_dir(model) / "manifest.json").is_file():
            pytest.skip(f"models/{model} is not built (scripts/test.sh builds every package)")
    from maas.tools.local.server import new_tenant, start

    running = start(host="127.0.0.1", port=0, model_dir=paths.model_dir(EMBEDDING_MODEL))
    try:
        # A tenant of the suite's own: the sample events bill the "demo" tenant under another plan, and one tenant's
        # quota leases are counted against whatever plan its next request comes with.
        tenant, key = new_tenant(running.moto_url, suite, "pro")
        yield Served(running.base_url, key, running.moto_url, tenant, running)
    finally:
        running.stop()
