"""The model catalog: id resolution, versions, the listing, and agreement with infra/config.json."""

from __future__ import annotations

import json

import pytest

from maas.errors import NotFound
from maas.inference.catalog import Catalog, CatalogEntry, CatalogError, catalog_table, default_catalog, load_catalog
from maas.inference.package import Manifest
from maas.tools import paths
from maas.tools.cli import main


def _entry(**kw) -> CatalogEntry:
    return CatalogEntry(**{"name": "m", "version": "1", "task": "embeddings", "build": "maas models build m", **kw})


def test_the_shipped_catalog_lists_the_served_models():
    catalog = default_catalog()
    assert catalog.names() == [
        "all-minilm-l6-v2",
        "all-minilm-l6-v2-fast",
        "all-minilm-l6-v2-static",
        "all-minilm-l6-v2-fp32",
        "ticket-intents",
        "digits-cnn",
    ]
    for tier, dimensions in (("all-minilm-l6-v2-fast", 384), ("all-minilm-l6-v2-static", 256)):
        entry = catalog.latest(tier)
        assert (entry.task, entry.runtime, entry.unit) == ("embeddings", "layer", "tokens")
        assert entry.dimensions == dimensions
        assert entry.build == f"maas models build {tier}"
    minilm = catalog.latest("all-minilm-l6-v2")
    assert (minilm.task, minilm.runtime, minilm.precision, minilm.unit) == ("embeddings", "layer", "int8", "tokens")
    assert minilm.serves("rerank") and not minilm.serves("classify")
    assert catalog.latest("all-minilm-l6-v2-fp32").runtime == "sagemaker"
    intents = catalog.latest("ticket-intents")
    assert (intents.task, intents.build, intents.placeholder) == ("classify", "maas models train-classifier", False)
    digits = catalog.latest("digits-cnn")
    assert (digits.task, digits.unit, digits.family, digits.runtime) == (
        "image-classify",
        "images",
        "image-classification",
        "layer",
    )


@pytest.mark.parametrize(
    "model_id,expected",
    [
        ("all-minilm-l6-v2", "all-minilm-l6-v2@1"),
        ("ALL-MiniLM-L6-v2@latest", "all-minilm-l6-v2@1"),
        ("all-minilm-l6-v2@1", "all-minilm-l6-v2@1"),
        ("sentence-transformers/all-MiniLM-L6-v2", "all-minilm-l6-v2@1"),
        ("sentence-transformers/all-MiniLM-L6-v2@1", "all-minilm-l6-v2@1"),
        ("all-minilm-l6-v2@7", None),
        ("gpt-4", None),
        ("", None),
    ],
)
def test_model_ids_resolve_case_insensitively(model_id, expected):
    entry = default_catalog().resolve(model_id)
    assert (entry.id if entry else None) == expected


def test_latest_is_the_marked_version_and_older_versions_stay_pinnable():
    catalog = Catalog([_entry(version="1"), _entry(version="2", latest=True), _entry(version="3-rc")])
    assert catalog.resolve("m").version == "2"
    assert catalog.resolve("m@latest").version == "2"
    assert catalog.resolve("m@1").version == "1"
    assert catalog.resolve("m@3-rc").version == "3-rc"
    # Without a marker, the highest version (numerically: 10 > 9) is latest.
    unmarked = Catalog([_entry(version="9"), _entry(version="10")])
    assert unmarked.resolve("m").version == "10"
    # Removing a version from the catalog is what stops it resolving.
    assert Catalog([_entry(version="2")]).resolve("m@1") is None


@pytest.mark.parametrize(
    "entries,message",
    [
        ([_entry(), _entry()], "twice"),
        ([_entry(latest=True), _entry(version="2", latest=True)], "more than one version"),
        ([_entry(aliases=("x",)), _entry(name="n", aliases=("x",))], "more than one model"),
    ],
)
def test_inconsistent_catalogs_are_refused(entries, message):
    with pytest.raises(CatalogError, match=message):
        Catalog(entries)


def test_an_entry_must_say_how_it_is_made(tmp_path):
    path = tmp_path / "catalog.toml"
    path.write_text('[[models]]\nname = "m"\nversion = "1"\ntask = "embeddings"\n')
    with pytest.raises(CatalogError, match="how it is built"):
        load_catalog(path)


def test_resolve_served_refuses_other_models_and_versions(model_dir):
    from maas.inference.catalog import resolve_served
    from maas.inference.package import read_manifest

    manifest: Manifest = read_manifest(model_dir)
    assert resolve_served("All-MiniLM-L6-v2@latest", manifest) is manifest
    assert resolve_served(None, manifest) is manifest
    with pytest.raises(NotFound, match="does not exist"):
        resolve_served("nope", manifest)
    with pytest.raises(NotFound, match="not served by this endpoint"):
        resolve_served("ticket-intents", manifest)


def test_infra_config_deploys_catalog_models_only():
    """infra/config.json's models are catalog entries with the same task, runtime and version; every catalog
    entry that is not a placeholder is deployed."""
    config = json.loads((paths.REPO_ROOT / "infra" / "config.json").read_text())
    catalog = default_catalog()
    deployed = set()
    for model in config["models"]:
        entry = catalog.resolve(f"{model['name']}@{model.get('version', '1')}")
        assert entry is not None, f"infra/config.json deploys {model['name']}, which the catalog does not list"
        assert (model["task"], model.get("runtime", "layer")) == (entry.task, entry.runtime), model["name"]
        deployed.add(entry.name)
    expected = {e.name for e in catalog.entries if not e.placeholder}
    assert expected <= deployed, f"catalog models missing from infra/config.json: {sorted(expected - deployed)}"


def test_models_list_shows_sizes_quality_and_unbuilt(model_dir, tmp_path, capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    [line] = [x for x in out.splitlines() if x.startswith("all-minilm-l6-v2@1")]
    assert "MB" in line and "min cos 0.99" in line and "layer" in line and "embeddings+rerank" in line
    [intents] = [x for x in out.splitlines() if x.startswith("ticket-intents@1")]
    assert "classify" in intents and "maas models train-classifier" in intents  # built or not, by another pipeline
    empty = catalog_table(default_catalog(), tmp_path)
    assert empty.count("not built") == len(default_catalog().entries)


def test_maas_serve_routes_every_task_the_catalog_serves_on_lambda():
    """Each task a deployed (non-placeholder, non-SageMaker) catalog entry answers has a function and a POST
    route in `maas serve`'s route table, and that function gets a model source."""
    from maas.tools.local.server import ROUTES, function_env

    env = function_env(paths.model_dir())
    posts = {r.function for r in ROUTES if r.method == "POST"}
    for entry in default_catalog().entries:
        if entry.placeholder or entry.runtime == "sagemaker":
            continue
        for task in (entry.task, *entry.tasks_also):
            function = task.replace("-", "_")
            assert (paths.FUNCTIONS_DIR / function / "app.py").is_file(), function
            assert function in posts and "MAAS_MODEL_SOURCE" in env[function], function


def test_built_packages_agree_with_the_catalogs_dimensions_and_labels():
    """GET /v1/models describes models the answering function does not load from the catalog: a built package's
    manifest must say the same."""
    from maas.inference.package import read_manifest

    checked = 0
    for entry in default_catalog().entries:
        folder = paths.model_dir(entry.package_name)
        if entry.placeholder or not (folder / "manifest.json").is_file():
            continue
        manifest = read_manifest(folder)
        if manifest.version != entry.version:
            continue
        if entry.task == "embeddings":
            assert entry.dimensions == manifest.dimensions, entry.id
        else:
            assert list(entry.labels) == list(manifest.labels), entry.id
        checked += 1
    assert checked >= 1


def test_maas_serve_builds_every_other_catalog_model_it_serves():
    # GIVEN the default embedding model that `maas serve` starts with
    from maas.tools.build import BUILDS
    from maas.tools.local.server import served_beside

    # WHEN it lists what it serves beside it (built first when missing)
    beside = served_beside("all-minilm-l6-v2")
    # THEN every other catalog model but the image one (built apart, in the image model's folder) is there, each with
    # a builder, so a newcomer's first `maas serve` answers for all of them rather than 503 or 404
    names = {e.name for e in default_catalog().entries}
    assert set(beside) == names - {"all-minilm-l6-v2", "digits-cnn"}
    assert set(beside) <= set(BUILDS)
    assert served_beside("ticket-intents") == []  # not an embedding model: nothing is served beside it
