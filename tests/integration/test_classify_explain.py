"""POST /v1/classify with parameters.explain, through functions/classify with the real packages: the served Shapley
values against shap's own explainers (same [MASK] masking, same everything-masked background), additivity, the
bill (evaluations x tokens), the evaluation cap, and deletion faithfulness on held-out texts."""

# ruff: noqa: F811  (the fixtures are the classify handler module's own, imported by name)

from __future__ import annotations

import csv
import re
import time
from pathlib import Path

import numpy as np
import pytest

from maas.inference.explain import plan
from maas.inference.package import read_manifest
from maas.metering.store import Meter
from maas.tables import USAGE
from tests.client import assert_error
from tests.conftest import load_event
from tests.integration.test_classify_handler import (  # noqa: F401
    NAME,
    _auth,
    _post,
    classifier_dir,
    classify,
    classify_handler,
)

shap = pytest.importorskip("shap")  # a dev dependency; maas itself never imports it
DATA = Path(__file__).resolve().parents[2] / "maas" / "data" / "ticket_intents.csv"


def held_out() -> list[str]:
    with DATA.open(newline="") as f:
        return [row["text"] for row in csv.DictReader(f) if row["split"] == "test"]


class MaskedModel:
    """The model as shap sees it: a row of 0/1 per word -> the label's probability, with every token of a 0 word
    replaced by [MASK] (written here from the tokenizer's offsets, independently of maas.inference.explain)."""

    def __init__(self, folder: Path, text: str, label: int):
        from maas.inference.classifiers import TextClassifier

        self.model = TextClassifier(folder, read_manifest(folder), threads=1)
        enc = self.model.tokenize([text])[0]
        starts = [m.start() for m in re.finditer(r"\S+", text)]
        self.words = len(starts)
        self.ids = np.asarray(enc.ids)
        self.word_of = np.array(
            [
                -1 if special else max(i for i, s in enumerate(starts) if s <= start)
                for (start, _), special in zip(enc.offsets, enc.special_tokens_mask, strict=True)
            ]
        )
        self.label, self.mask = label, self.model.tokenizer.token_to_id("[MASK]")

    def __call__(self, z: np.ndarray) -> np.ndarray:
        rows = np.tile(self.ids, (len(z), 1))
        for r, keep in enumerate(np.asarray(z) > 0.5):
            rows[r, (self.word_of >= 0) & ~keep[np.maximum(self.word_of, 0)]] = self.mask
        feed = {"input_ids": rows, "attention_mask": np.ones_like(rows), "token_type_ids": np.zeros_like(rows)}
        return self.model.session.run(["probabilities"], feed)[0][:, self.label].astype(np.float64)


def _explained(classify, text: str, **params) -> dict:
    status, body = _post(classify, {"inputs": [text], "parameters": {"explain": True, **params}})
    assert status == 200, body
    top = body[0][0]
    assert "explanation" in top and all("explanation" not in other for other in body[0][1:])
    return top


def _check_additive(text: str, top: dict) -> None:
    e = top["explanation"]
    assert e["output"] == "probability" and e["value"] == top["score"]
    assert abs(e["base_value"] + sum(w["value"] for w in e["words"]) - e["value"]) <= 1e-6 * (len(e["words"]) + 2)
    assert [w["text"] for w in e["words"]] == text.split()
    assert all(text[w["start"] : w["end"]] == w["text"] for w in e["words"])


def test_exact_values_match_shaps_exact_explainer_on_held_out_texts(classify, classifier_dir):
    # GIVEN held-out texts of at most 8 words (exact within the default budget of 256 evaluations)
    texts = [t for t in held_out() if len(t.split()) <= 8][:4]
    assert len(texts) == 4
    labels = read_manifest(classifier_dir).labels
    for text in texts:
        # WHEN the service explains it
        top = _explained(classify, text)
        e = top["explanation"]
        words = len(text.split())
        assert e["method"] == "exact" and e["evaluations"] == 2**words
        _check_additive(text, top)
        # THEN shap's ExactExplainer on the same masked model gives the same values (float32 outputs, 6 decimals)
        model = MaskedModel(classifier_dir, text, labels.index(top["label"]))
        explainer = shap.ExactExplainer(model, shap.maskers.Independent(np.zeros((1, words))))
        theirs = explainer(np.ones((1, words)))
        np.testing.assert_allclose([w["value"] for w in e["words"]], theirs.values[0], atol=2e-5)
        assert abs(e["base_value"] - theirs.base_values[0]) <= 2e-5


def test_permutation_values_agree_with_shap_within_the_stated_tolerance(classify, classifier_dir):
    # GIVEN held-out texts of 10 words: 1,024 coalitions, more than the default budget
    texts = [t for t in held_out() if len(t.split()) == 10][:2]
    labels = read_manifest(classifier_dir).labels
    for text in texts:
        top = _explained(classify, text)
        e = top["explanation"]
        assert e["method"] == "permutation" and e["evaluations"] <= 256
        _check_additive(text, top)
        model = MaskedModel(classifier_dir, text, labels.index(top["label"]))
        masker = shap.maskers.Independent(np.zeros((1, 10)))
        exact = shap.ExactExplainer(model, masker)(np.ones((1, 10))).values[0]
        sampled = shap.PermutationExplainer(model, masker, seed=0)(np.ones((1, 10)), max_evals=256).values[0]
        ours = np.array([w["value"] for w in e["words"]])
        # THEN within 0.1 of the largest value of shap's exact values, the same most important word, and no
        # further from them than shap's own PermutationExplainer on the same budget (plus 0.05)
        spread = np.abs(exact).max()
        assert np.abs(ours - exact).max() <= 0.1 * spread
        assert np.argmax(ours) == np.argmax(exact)
        assert np.abs(ours - exact).max() <= np.abs(sampled - exact).max() + 0.05 * spread


def test_zero_shot_explains_the_predicted_label(classify):
    text = "The courier lost my parcel again"
    status, body = _post(
        classify,
        {"inputs": text, "parameters": {"candidate_labels": ["shipping", "billing", "praise"], "explain": True}},
    )
    assert status == 200 and body[0]["label"] == "shipping"  # zero-shot on one string: one flat list
    top = body[0]
    _check_additive(text, top)
    values = {w["text"]: w["value"] for w in top["explanation"]["words"]}
    assert max(values, key=values.get) in {"courier", "parcel"}


def test_an_explained_call_bills_its_evaluations_and_the_cap_is_a_400(classify, aws, classifier_dir):
    from tokenizers import Tokenizer

    meter = Meter(aws.client("dynamodb"), USAGE.local_name)
    tok = Tokenizer.from_file(str(classifier_dir / "tokenizer.json"))
    auth, start = _auth(), time.time() - 1
    text = "I was charged twice for one order"
    status, body = _post(classify, {"inputs": text, "parameters": {"explain": True}}, auth)
    assert status == 200 and body[0][0]["explanation"]["evaluations"] == 2**7
    # refused before the model runs, never billed: over the cap, a budget below 2, a budget without explain
    over = {"inputs": [text] * 17, "parameters": {"explain": True}}  # 17 x 128 > 2048
    resp = classify.post("/v1/classify", json=over, authorizer=auth)
    assert_error(resp, 400, "too_many_evaluations")
    assert "2176 model evaluations" in resp.json["error"]["message"] and "2048" in resp.json["error"]["message"]
    assert _post(classify, {"inputs": text, "parameters": {"explain": True, "explain_evaluations": 1}}, auth)[0] == 400
    # a budget above the cap is refused as asked, before any plan is made (a plan is as large as its budget)
    huge = {"inputs": text, "parameters": {"explain": True, "explain_evaluations": 10**12}}
    resp = classify.post("/v1/classify", json=huge, authorizer=auth)
    assert_error(resp, 400, "too_many_evaluations")
    assert f"'parameters.explain_evaluations' = {10**12} per input takes" in resp.json["error"]["message"]
    # every evaluation runs the input's tokens: a 151-word text explained (one permutation and its reverse, ~300
    # evaluations of 153 tokens) is over the function's token budget per request, a 413 before anything runs
    long = {"inputs": " ".join(["the parcel never came"] * 38)[:-5], "parameters": {"explain": True}}
    resp = classify.post("/v1/classify", json=long, authorizer=auth)
    assert_error(resp, 413, "token_budget_exceeded")
    evaluations = plan(151, 256).evaluations
    assert f"1 inputs x {evaluations} explanation evaluations in all" in resp.json["error"]["message"]
    assert _post(classify, {"inputs": text, "parameters": {"explain_evaluations": 64}}, auth)[0] == 400
    events = list(meter.events(auth["tenant_id"], start, time.time() + 1))
    assert [(e.model, e.units) for e in events] == [(NAME, 2**7 * len(tok.encode(text).ids))]


def test_deleting_the_top_words_lowers_the_probability_more_than_random_words(classifier_dir):
    from maas.tools.bench.explain import text_deletion

    # every fourth held-out text with at least 6 words (a deterministic subset: ~30 texts)
    texts = [t for t in held_out() if len(t.split()) >= 6][::4]
    result = text_deletion(classifier_dir, texts)
    assert result["n"] == len(texts) >= 25
    assert result["rate"] >= 0.8, result


def test_masked_rows_of_several_inputs_are_packed_into_few_session_runs(classifier_dir):
    from maas.inference.classifiers import TextClassifier

    model = TextClassifier(classifier_dir, read_manifest(classifier_dir), threads=1)
    texts = ["Where is my parcel?", "I want my money back for the broken lamp", "Cancel it"]
    groups = [np.tile(np.asarray(e.ids), (n, 1)) for e, n in zip(model.tokenize(texts), (40, 25, 60), strict=True)]
    alone = [model.embed([t]).vectors[0] for t in texts]
    # all 125 rows fit one call of 32,768 tokens; at 200 tokens per call (widths 4, 7 and 11 tokens, packed
    # shortest first): 50 x 4 | 10 x 4 + 18 x 7 | 22 x 7 | 18 x 11 | 7 x 11
    for max_tokens, calls in ((32768, 1), (200, 5)):
        outs, used = model.run_rows(groups, max_tokens=max_tokens)
        assert used == calls
        for out, group, expected in zip(outs, groups, alone, strict=True):
            assert out.shape == (len(group), 7)
            np.testing.assert_allclose(out, np.tile(expected, (len(group), 1)), atol=1e-5)


def test_the_sample_event_explains_its_text(classify):
    resp = classify.invoke(load_event("classify-post-explain.json"))
    assert resp.status == 200, resp.json
    top = resp.json[0][0]
    assert top["label"] == "shipping"
    _check_additive("My parcel was due on Monday and still has not arrived", top)
