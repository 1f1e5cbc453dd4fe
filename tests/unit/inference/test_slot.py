"""The model slot: load and verify once, 503 while not loaded, retry without a restart."""

import logging

import pytest

from maas.errors import ServiceUnavailable
from maas.inference import slot as slot_module
from maas.inference.slot import ModelSlot

LOGGER = logging.getLogger("test.slot")


class Builds:
    """A build function that records what it was asked to build (no session: the slot's logic is under test)."""

    def __init__(self):
        self.calls = []

    def __call__(self, folder, manifest):
        self.calls.append(folder)
        return ("runtime", manifest.name, len(self.calls))


def test_a_missing_package_is_a_503_named_after_its_folder_and_logged(tmp_path, caplog):
    # GIVEN a source where no package is yet
    build = Builds()

    # WHEN the slot is made and asked for its model
    slot = ModelSlot(str(tmp_path / "my-model"), build, tmp_path / "cache", LOGGER)

    # THEN it answers 503 under the folder's name, logged the reason, and built nothing
    with pytest.raises(ServiceUnavailable, match="'my-model' is unavailable"):
        slot.ready()
    assert "not a directory" in slot.load_error and build.calls == []
    assert [r.reason for r in caplog.records if r.getMessage() == "model failed to load"] == [slot.load_error]
    assert slot.ids() == {"my-model", "my-model@latest"}


def test_a_failed_load_is_retried_after_the_interval_and_heals(model_dir, tmp_path, monkeypatch):
    # GIVEN a slot whose package was missing at init
    source = tmp_path / "pkg"
    build = Builds()
    slot = ModelSlot(str(source), build, tmp_path / "cache", LOGGER)

    # WHEN the package appears, first within the retry interval, then after it
    source.symlink_to(model_dir)
    with pytest.raises(ServiceUnavailable):
        slot.ready()
    monkeypatch.setattr(slot_module, "RETRY_LOAD_AFTER_S", 0.0)
    runtime = slot.ready()

    # THEN it was not retried early, then loaded once, without a restart, and answers to its manifest's ids
    assert runtime == ("runtime", "all-minilm-l6-v2", 1) and slot.load_error is None
    assert slot.ready() is runtime and len(build.calls) == 1
    assert {"all-minilm-l6-v2", "all-minilm-l6-v2@latest", f"all-minilm-l6-v2@{slot.manifest.version}"} <= slot.ids()


def test_several_versions_load_together_in_the_order_given(model_dir, tmp_path):
    # GIVEN two packages of one model, and an order that puts the second first
    (tmp_path / "v1").symlink_to(model_dir)
    (tmp_path / "v2").symlink_to(model_dir)
    build = Builds()

    # WHEN the slot loads them
    slot = ModelSlot(
        f"{tmp_path / 'v1'}, {tmp_path / 'v2'}", build, tmp_path / "cache", LOGGER, order=lambda pairs: pairs[::-1]
    )

    # THEN both are served, and the default (ready) is the one the order put first
    assert [runtime for runtime, _ in slot.versions] == [
        ("runtime", "all-minilm-l6-v2", 2),
        ("runtime", "all-minilm-l6-v2", 1),
    ]
    assert slot.ready() == ("runtime", "all-minilm-l6-v2", 2)


def test_one_bad_version_fails_the_whole_slot(model_dir, tmp_path):
    # GIVEN one good and one missing package
    (tmp_path / "good").symlink_to(model_dir)

    # WHEN the slot loads them
    slot = ModelSlot(f"{tmp_path / 'good'},{tmp_path / 'gone'}", Builds(), tmp_path / "cache", LOGGER)

    # THEN nothing is served rather than a partial set of versions
    assert slot.versions == [] and slot.runtime is None
    with pytest.raises(ServiceUnavailable):
        slot.ready()
