"""Classifier training inputs and pure logic: CSV validation, the held-out split, the head, ranking, zero-shot."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from maas.inference.classifiers import ZERO_SHOT_TEMPERATURE, ranked, zero_shot_scores
from maas.settings.functions import ClassifySettings
from maas.tools.build.classifier import DatasetError, default_data, read_dataset, train_head


def _csv(tmp_path: Path, rows: list[list[str]], header=("text", "label")) -> Path:
    path = tmp_path / "data.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _rows(classes=("a", "b"), per_class=10) -> list[list[str]]:
    return [[f"example {i} of class {c}", c] for c in classes for i in range(per_class)]


def test_shipped_dataset_is_big_varied_and_split_about_one_in_five():
    ds = read_dataset(default_data())
    assert len(ds.texts) >= 600 and len(ds.classes) >= 6
    assert len({t.casefold() for t in ds.texts}) == len(ds.texts), "duplicate texts"
    assert ds.split == "the CSV's split column"
    assert 0.17 <= ds.is_test.mean() <= 0.23
    labels = np.array(ds.labels)
    for c in ds.classes:  # balanced: every class has 80-90 examples
        assert (labels == c).sum() >= 80


@pytest.mark.parametrize(
    "header,rows,fragment",
    [
        (("text", "category"), _rows(), "missing column(s) 'label'"),
        (("body",), [["x"]], "missing column(s) 'text', 'label'"),
        (("text", "label"), _rows() + [["   ", "a"]], "line 22: empty text"),
        (("text", "label"), _rows() + [["fine", ""]], "line 22: empty label"),
        (("text", "label"), _rows(("a", "b")) + [["lonely", "c"]], "class 'c' has too few examples"),
        (("text", "label"), _rows(("a",)), "at least 2 classes"),
        (("text", "label", "split"), [[t, c, "validation"] for t, c in _rows()], "split must be 'train' or 'test'"),
        (("text", "label", "split"), [[t, c, "train"] for t, c in _rows()], "0 held out"),
    ],
)
def test_bad_csv_is_refused_with_a_clear_message(tmp_path, header, rows, fragment):
    with pytest.raises(DatasetError) as err:
        read_dataset(_csv(tmp_path, rows, header))
    assert fragment in str(err.value)


def test_unreadable_files_are_refused(tmp_path):
    with pytest.raises(DatasetError, match="cannot read"):
        read_dataset(tmp_path / "absent.csv")
    (tmp_path / "latin1.csv").write_bytes("text,label\ncaf\xe9,a\n".encode("latin-1"))
    with pytest.raises(DatasetError, match="not UTF-8"):
        read_dataset(tmp_path / "latin1.csv")


def test_without_a_split_column_a_fifth_of_each_class_is_held_out_stably(tmp_path):
    rows = _rows(("a", "b", "c"), per_class=10)
    first = read_dataset(_csv(tmp_path, rows))
    again = read_dataset(_csv(tmp_path, list(reversed(rows))))
    held = {t for t, h in zip(first.texts, first.is_test, strict=True) if h}
    assert held == {t for t, h in zip(again.texts, again.is_test, strict=True) if h}
    assert len(held) == 6 and {first.labels[first.texts.index(t)] for t in held} == {"a", "b", "c"}


def test_head_training_is_deterministic_and_separates_the_classes():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 16))
    y = np.repeat(np.arange(3), 20)
    x = centers[y] + 0.3 * rng.normal(size=(60, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    w1, b1 = train_head(x, y, 3)
    w2, b2 = train_head(x, y, 3)
    assert np.array_equal(w1, w2) and np.array_equal(b1, b2)
    assert ((x @ w1 + b1).argmax(1) == y).mean() == 1.0


def test_ranked_sorts_by_score_and_applies_top_k():
    p = np.array([[0.2, 0.5, 0.3]])
    assert ranked(["a", "b", "c"], p, None) == [
        [{"label": "b", "score": 0.5}, {"label": "c", "score": 0.3}, {"label": "a", "score": 0.2}]
    ]
    assert ranked(["a", "b", "c"], p, 1) == [[{"label": "b", "score": 0.5}]]
    assert len(ranked(["a", "b", "c"], p, 10)[0]) == 3  # top_k above the label count returns every label


def test_zero_shot_scores_are_a_softmax_of_cosine_over_the_temperature():
    texts = np.array([[1.0, 0.0]])
    hyps = np.array([[1.0, 0.0], [0.0, 1.0]])
    p = zero_shot_scores(texts, hyps)
    assert p.sum() == pytest.approx(1.0)
    assert p[0, 0] / p[0, 1] == pytest.approx(np.exp(1.0 / ZERO_SHOT_TEMPERATURE))


def test_classifier_sources_default_to_ticket_intents_next_to_the_embedding_model():
    s = ClassifySettings.from_env({"MAAS_MODEL_SOURCE": "/opt/models/all-minilm-l6-v2", "MAAS_METERING": "off"})
    assert s.classifier_source_list() == ["/opt/models/ticket-intents"]
    s = ClassifySettings.from_env({"MAAS_MODEL_SOURCE": "s3://b/models/all-minilm-l6-v2", "MAAS_METERING": "off"})
    assert s.classifier_source_list() == ["s3://b/models/ticket-intents"]
    s = ClassifySettings.from_env({"MAAS_CLASSIFIER_SOURCES": "/a/x, /b/y", "MAAS_METERING": "off"})
    assert s.classifier_source_list() == ["/a/x", "/b/y"]
