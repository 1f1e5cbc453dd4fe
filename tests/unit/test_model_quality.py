"""The shipped int8 package against its targets and against the fp32 reference (golden vectors)."""

from __future__ import annotations

import hashlib
from importlib import resources

import numpy as np

from maas.inference.embedder import TextEmbedder
from maas.inference.package import read_manifest

# Tolerances, stated: the fp32 ONNX package must reproduce sentence-transformers (torch, fp32) to
# 1e-5 per component; the int8 package must keep every golden sentence at cosine >= 0.99 and every
# component within 0.02.
FP32_ATOL = 1e-5
INT8_MIN_COSINE = 0.99
INT8_ATOL = 0.02


def _embed(folder, sentences):
    return TextEmbedder(folder, read_manifest(folder)).embed(sentences).vectors


def test_manifest_reports_the_targets(model_dir):
    m = read_manifest(model_dir)
    q = m.quality
    assert q.size_ratio >= 3.9
    assert q.min_cosine >= 0.99
    assert q.n >= 200
    raw = (resources.files("maas") / "data" / "eval_sentences.txt").read_bytes()
    assert q.eval_set_sha256 == hashlib.sha256(raw).hexdigest()
    assert abs(q.fp32_bytes / q.model_bytes - q.size_ratio) < 1e-3
    assert m.quantization.method == "weight-only int8"
    assert {t["method"] for t in m.quantization.tried} == {"dynamic int8, per-tensor", "dynamic int8, per-channel"}


def test_eval_set_and_test_sentences_do_not_overlap(golden):
    evals = set((resources.files("maas") / "data" / "eval_sentences.txt").read_text().splitlines())
    assert not evals & set(golden["sentences"])


def test_fp32_package_matches_sentence_transformers(fp32_model_dir, golden):
    """The heavy package serves 512 tokens; truncated at sentence-transformers' 256 it reproduces the golden
    vectors exactly, and a text longer than 256 tokens really is embedded past 256."""
    manifest = read_manifest(fp32_model_dir)
    assert (manifest.name, manifest.version, manifest.runtime_target) == ("all-minilm-l6-v2-fp32", "1", "sagemaker")
    assert manifest.max_sequence_length == 512
    at_256 = TextEmbedder(fp32_model_dir, manifest.model_copy(update={"max_sequence_length": 256}))
    vectors = at_256.embed(golden["sentences"]).vectors
    np.testing.assert_allclose(vectors, np.array(golden["vectors"]), atol=FP32_ATOL)
    full = TextEmbedder(fp32_model_dir, manifest).embed(golden["sentences"])
    long = [i for i, n in enumerate(full.token_counts) if n > 256]
    assert long, "the golden set has texts over 256 tokens"
    assert all(float(full.vectors[i] @ vectors[i]) < 0.999 for i in long)


def test_int8_package_stays_close_to_the_reference(model_dir, golden):
    vectors = _embed(model_dir, golden["sentences"])
    reference = np.array(golden["vectors"], dtype=np.float32)
    cosine = (vectors * reference).sum(1) / np.linalg.norm(vectors, axis=1) / np.linalg.norm(reference, axis=1)
    assert cosine.min() >= INT8_MIN_COSINE, cosine
    assert np.abs(vectors - reference).max() <= INT8_ATOL
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_length_bucketing_returns_vectors_in_input_order(model_dir, golden):
    manifest = read_manifest(model_dir)
    sentences = golden["sentences"]
    batched = TextEmbedder(model_dir, manifest, max_batch=4).embed(sentences).vectors
    one_by_one = np.stack([_single(model_dir).embed([s]).vectors[0] for s in sentences])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)


_SINGLE = {}


def _single(folder):
    if folder not in _SINGLE:
        _SINGLE[folder] = TextEmbedder(folder, read_manifest(folder), max_batch=1)
    return _SINGLE[folder]


def test_long_input_is_truncated_at_the_model_limit(model_dir):
    embedder = _single(model_dir)
    result = embedder.embed(["word " * 1000, "short"])
    assert result.token_counts[0] == 256
    assert result.truncated == [True, False]


def test_building_twice_gives_the_same_sha256s(model_dir, tmp_path):
    from maas.tools.build.minilm import build

    again = build(tmp_path / "again", compare=False, quiet=True)
    assert {k: v.sha256 for k, v in again.files.items()} == {
        k: v.sha256 for k, v in read_manifest(model_dir).files.items()
    }


def test_batches_respect_count_and_padded_token_budget(model_dir):
    embedder = TextEmbedder(model_dir, read_manifest(model_dir), max_batch=4, max_batch_tokens=64)
    lengths = np.array([10, 200, 12, 11, 9, 13, 30, 31, 8])
    groups = embedder.batches(lengths)
    assert sorted(int(i) for g in groups for i in g) == list(range(len(lengths)))
    for g in groups:
        assert len(g) <= 4
        assert len(g) == 1 or len(g) * lengths[g].max() <= 64
    assert [len(g) for g in groups if 1 in g] == [1]  # the long text runs alone
