"""The Shapley estimators of maas.inference.explain against the shap library's own explainers, on games whose
values are known: additivity, exact agreement with shap's ExactExplainer, and the permutation estimate's error."""

from __future__ import annotations

import numpy as np
import pytest

from maas.inference.explain import EXACT, PERMUTATION, plan, shapley_values, text_players

shap = pytest.importorskip("shap")  # a dev dependency (pyproject's dev extra), never imported by maas itself


def _game(players: int, seed: int):
    """A game with main effects, pairwise and three-way interactions (permutation sampling is not exact on it)."""
    rng = np.random.default_rng(seed)
    main, pair, triple = rng.normal(size=players), rng.normal(size=(players, players)), rng.normal(size=players)

    def value(coalitions: np.ndarray) -> np.ndarray:
        z = np.asarray(coalitions, dtype=np.float64)
        return z @ main + 0.3 * np.einsum("ri,ij,rj->r", z, pair, z) + 0.5 * (z @ triple) ** 3 / players

    return value


def _shap_exact(value, players: int) -> np.ndarray:
    """shap's ExactExplainer with every player absent in the background (the same masking as ours)."""
    explainer = shap.ExactExplainer(value, shap.maskers.Independent(np.zeros((1, players))))
    return explainer(np.ones((1, players))).values[0]


@pytest.mark.parametrize("players", [1, 2, 5, 8])
def test_exact_plan_matches_shaps_exact_explainer(players):
    value = _game(players, seed=players)
    p = plan(players, budget=256)
    assert p.method == EXACT and p.evaluations == 2**players
    assert p.coalitions[0].all() and not p.coalitions[1].any()  # everybody, then nobody
    ours = shapley_values(p, value(p.coalitions))
    np.testing.assert_allclose(ours, _shap_exact(value, players), atol=1e-9)


@pytest.mark.parametrize("players", [9, 12])
def test_permutation_plan_is_additive_and_close_to_the_exact_values(players):
    value = _game(players, seed=players)
    exact = _shap_exact(value, players)
    p = plan(players, budget=256)
    assert p.method == PERMUTATION and p.evaluations <= 256
    outputs = value(p.coalitions)
    ours = shapley_values(p, outputs)
    # additive exactly: every permutation's marginal contributions telescope to f(everybody) - f(nobody)
    assert abs(ours.sum() - (outputs[0] - outputs[1])) < 1e-9
    # shap's PermutationExplainer on the same budget: both estimate the exact values, with errors of one size
    theirs = shap.PermutationExplainer(value, shap.maskers.Independent(np.zeros((1, players))), seed=0)(
        np.ones((1, players)), max_evals=256
    ).values[0]
    spread = np.abs(exact).max()
    ours_error, theirs_error = np.abs(ours - exact).max() / spread, np.abs(theirs - exact).max() / spread
    assert ours_error < 0.15, ours_error
    assert ours_error < 2 * theirs_error + 0.02, (ours_error, theirs_error)


def test_the_plan_is_the_same_on_every_call_and_rows_are_unique():
    a, b = plan(20, 256), plan(20, 256)
    assert np.array_equal(a.coalitions, b.coalitions) and np.array_equal(a.orders, b.orders)
    assert len(np.unique(a.coalitions, axis=0)) == a.evaluations  # each evaluation is billed: none twice
    assert a.evaluations <= 256 and len(a.orders) == 2 * ((256 - 2) // (2 * 19))


def test_text_players_are_whitespace_words_with_their_tokens():
    from tokenizers import Tokenizer
    from tokenizers.models import WordPiece
    from tokenizers.pre_tokenizers import BertPreTokenizer

    vocab = {t: i for i, t in enumerate(["[CLS]", "[SEP]", "[MASK]", "[UNK]", "i", "can", "'", "t", "log", "in", "!"])}
    tok = Tokenizer(WordPiece(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = BertPreTokenizer()
    text = "I  can't log in!"
    enc = tok.encode(text.lower())
    offsets = [(0, 0), *enc.offsets, (0, 0)]
    players = text_players(text, offsets, [1] + [0] * len(enc.offsets) + [1])
    assert [text[s:e] for s, e in players.spans] == ["I", "can't", "log", "in!"]
    assert players.token_word.tolist() == [-1, 0, 1, 1, 1, 2, 3, 3, -1]
    ids = [0, *enc.ids, 1]
    rows = players.masked_ids(ids, np.array([[True, False, True, False]]), mask_id=2)
    assert rows.tolist() == [[0, 4, 2, 2, 2, 8, 2, 2, 1]]  # can't and in! masked: every token of theirs
