"""Catalog versions: an older version keeps serving beside the latest until the catalog drops it.

The catalog here lists all-minilm-l6-v2@1 and a newer @2 (latest), and ticket-intents@1 and @2. Version 2 of
each is the built package with its manifest's version changed (the same files, so the same sha256s): what this
tests is which version answers and is billed, not what the versions compute.
"""

from __future__ import annotations

import json
import shutil
import time

import pytest

from maas.errors import NotFound
from maas.inference import catalog as catalog_module
from maas.inference.catalog import load_catalog
from maas.schemas.classify import ClassifyRequest
from maas.settings.functions import ClassifySettings
from maas.tasks import classify as classify_service
from maas.tasks import embeddings as embeddings_service
from maas.tasks.classify import ClassifyService
from maas.tools.local.functions import load_handler
from tests.conftest import function_env
from tests.integration.test_v2_handler import _call, _parts, fresh_tenant

CATALOG = """
[[models]]
name = "all-minilm-l6-v2"
version = "1"
task = "embeddings"
build = "maas models build all-minilm-l6-v2"

[[models]]
name = "all-minilm-l6-v2"
version = "2"
latest = true
task = "embeddings"
package = "all-minilm-l6-v2-v2"
build = "maas models build all-minilm-l6-v2"

[[models]]
name = "ticket-intents"
version = "1"
task = "classify"
build = "maas models train-classifier"

[[models]]
name = "ticket-intents"
version = "2"
latest = true
task = "classify"
package = "ticket-intents-v2"
build = "maas models train-classifier"
"""


def relabelled(folder, target, version: str):
    shutil.copytree(folder, target)
    manifest = json.loads((target / "manifest.json").read_text())
    (target / "manifest.json").write_text(json.dumps({**manifest, "version": version}))
    return target


@pytest.fixture
def two_versions(tmp_path, model_dir, monkeypatch):
    test_catalog = load_catalog(_write(tmp_path / "catalog.toml", CATALOG))
    for module in (catalog_module, embeddings_service, classify_service):
        monkeypatch.setattr(module, "default_catalog", lambda: test_catalog)
    v2 = relabelled(model_dir, tmp_path / "all-minilm-l6-v2-v2", "2")
    classifier = model_dir.parent / "ticket-intents"
    return {"v1": model_dir, "v2": v2, "c1": classifier, "c2": relabelled(classifier, tmp_path / "ti-v2", "2")}


def _write(path, text):
    path.write_text(text)
    return path


def test_embeddings_serves_both_versions_and_bills_the_one_that_answered(two_versions, aws, model_dir):
    # the older version listed first on purpose: the catalog, not the order, says which one a bare name means
    sources = f"{two_versions['v1']},{two_versions['v2']}"
    handler = load_handler("embeddings", {**function_env(aws, model_dir), "MAAS_MODEL_SOURCE": sources})
    meter, tenant, auth = fresh_tenant(aws)
    start = time.time() - 1

    def embed(model):
        return _parts(_call(handler, "POST", "/v1/embeddings", {"model": model, "input": "hello"}, authorizer=auth))

    assert embed("all-minilm-l6-v2")[1]["model"] == "all-minilm-l6-v2"  # the latest: version 2
    assert embed("all-minilm-l6-v2@latest")[1]["model"] == "all-minilm-l6-v2"
    assert embed("all-minilm-l6-v2@1")[1]["model"] == "all-minilm-l6-v2@1"
    assert embed("sentence-transformers/all-minilm-l6-v2@1")[0] == 404  # aliases are not in this catalog
    status, body, _ = embed("all-minilm-l6-v2@3")
    assert status == 404 and "does not exist" in body["error"]["message"]
    events = meter.events(tenant, start, time.time() + 1)
    assert sorted(e.version for e in events) == ["1", "2", "2"]
    status, models, _ = _parts(_call(handler, "GET", "/v1/models", authorizer=auth))
    embedding = [(m["id"], m["version"]) for m in models["data"] if m["task"] == "embeddings"]
    assert embedding == [("all-minilm-l6-v2", "2"), ("all-minilm-l6-v2@1", "1")]
    status, card, _ = _parts(_call(handler, "GET", "/v1/models/all-minilm-l6-v2@1", authorizer=auth))
    assert status == 200 and card["version"] == "1"


def test_a_version_dropped_from_the_served_packages_is_a_404_naming_what_is_served(two_versions, aws, model_dir):
    handler = load_handler("embeddings", {**function_env(aws, model_dir), "MAAS_MODEL_SOURCE": str(two_versions["v2"])})
    status, body, _ = _parts(_call(handler, "POST", "/v1/embeddings", {"model": "all-minilm-l6-v2@1", "input": "x"}))
    assert status == 404 and "it serves all-minilm-l6-v2@2" in body["error"]["message"]


def test_classifier_versions_resolve_through_the_catalog(two_versions, model_dir):
    settings = ClassifySettings(
        model_source=str(model_dir),
        classifier_sources=f"{two_versions['c1']},{two_versions['c2']}",
        metering="off",
    )
    service = ClassifyService(settings)
    assert service._find("ticket-intents", False).manifest.version == "2"
    assert service._find("ticket-intents@latest", False).manifest.version == "2"
    assert service._find("ticket-intents@1", False).manifest.version == "1"
    with pytest.raises(NotFound):
        service._find("ticket-intents@7", False)
    result = service.classify(ClassifyRequest(inputs="I forgot my password", model="ticket-intents@1"))
    assert result.manifest.version == "1"


def test_rerank_and_v2_serve_both_versions_too(two_versions, aws, model_dir):
    sources = f"{two_versions['v1']},{two_versions['v2']}"
    env = {**function_env(aws, model_dir), "MAAS_MODEL_SOURCE": sources}
    rerank, v2 = load_handler("rerank", env), load_handler("v2", env)
    meter, tenant, auth = fresh_tenant(aws)
    start = time.time() - 1
    body = {"query": "reset my password", "documents": ["password reset steps", "refund policy"]}
    status, answer, _ = _parts(
        _call(rerank, "POST", "/v1/rerank", {**body, "model": "all-minilm-l6-v2@1"}, authorizer=auth)
    )
    assert status == 200 and answer["model"] == "all-minilm-l6-v2@1"
    assert _call(rerank, "POST", "/v1/rerank", body, authorizer=auth).json["model"] == "all-minilm-l6-v2"
    tensors = [
        {"name": "input_ids", "datatype": "INT64", "shape": [1, 3], "data": [101, 7592, 102]},
        {"name": "attention_mask", "datatype": "INT64", "shape": [1, 3], "data": [1, 1, 1]},
    ]
    path = "/v2/models/all-minilm-l6-v2/versions/1/infer"
    status, answer, _ = _parts(_call(v2, "POST", path, {"inputs": tensors}, authorizer=auth))
    assert status == 200 and answer["model_version"] == "1"
    status, answer, _ = _parts(
        _call(v2, "POST", "/v2/models/all-minilm-l6-v2/infer", {"inputs": tensors}, authorizer=auth)
    )
    assert status == 200 and answer["model_version"] == "2"
    assert _call(v2, "GET", "/v2/models/all-minilm-l6-v2/versions/1", authorizer=auth).json["versions"] == ["1"]
    assert _call(v2, "GET", "/v2/models/all-minilm-l6-v2/versions/9", authorizer=auth).status == 404
    billed = sorted((e.task, e.version) for e in meter.events(tenant, start, time.time() + 1))
    assert billed == [("rerank", "1"), ("rerank", "2"), ("v2-infer", "1"), ("v2-infer", "2")]
