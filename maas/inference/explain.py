"""Shapley-value explanations of one model output over a few players (a text's words, an image's cells).

The estimator, chosen per input from its number of players M and an evaluation budget B:
- ``exact``: every one of the 2^M coalitions is evaluated (when 2^M <= B) and the Shapley values are computed
  from the definition, phi_i = sum over S not holding i of |S|! (M - |S| - 1)! / M! * (f(S + i) - f(S)): what
  shap's ExactExplainer computes.
- ``permutation``: antithetic permutation sampling (shap's PermutationExplainer): each sampled order and its
  reverse add the players one by one, and a player's value is its mean marginal contribution. The permutations
  are drawn from a fixed seed, so one input always gets the same explanation (and the same bill).

Either way the values are additive: sum(phi) + f(nobody) == f(everybody), exactly (each permutation's marginal
contributions telescope). A coalition is a boolean row (True: the player is present, False: masked); how a
masked player looks (a [MASK] token, a blank cell) is the caller's. Coalitions are deduplicated, so the number of rows
returned is exactly the number of model evaluations, known before the model runs (what the bill counts).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from math import factorial

import numpy as np

from maas.errors import InvalidRequest

EXACT = "exact"
PERMUTATION = "permutation"
PERMUTATION_SEED = 20261206  # fixed: the same input gets the same permutations, values and bill on every call


def check_evaluations(evaluations: int, cap: int, what: str, param: str, hint: str) -> None:
    """The per-request cap on model evaluations: a 400 ``too_many_evaluations`` above it, before anything runs.
    Checked on the requested budget before planning (a plan is as large as its budget) and on the planned total."""
    if evaluations > cap:
        raise InvalidRequest(
            f"{what} takes {evaluations} model evaluations; the maximum per request is {cap}. {hint}",
            code="too_many_evaluations",
            param=param,
        )


@dataclass(frozen=True)
class Plan:
    """The coalitions to evaluate for one input, and how to turn their outputs into Shapley values."""

    method: str  # EXACT or PERMUTATION
    coalitions: np.ndarray  # bool [evaluations, players]; row 0 is everybody (the unmasked input), row 1 nobody
    orders: np.ndarray | None = None  # permutation: int [permutations, players]; the rows each step lands on
    steps: np.ndarray | None = None  # permutation: int [permutations, players + 1], row indexes of each chain

    @property
    def evaluations(self) -> int:
        return len(self.coalitions)

    @property
    def players(self) -> int:
        return self.coalitions.shape[1]


def plan(players: int, budget: int) -> Plan:
    """The coalitions for ``players`` players within ``budget`` evaluations: exact when all 2^players fit, else
    as many antithetic permutation pairs as fit (at least one, 2 * players evaluations at most)."""
    if players < 1:
        raise ValueError("an explanation needs at least one player")
    if players <= 2 or (players < 31 and 2**players <= budget):
        return _exact_plan(players)
    pairs = max(1, (budget - 2) // (2 * (players - 1)))
    rng = np.random.default_rng(PERMUTATION_SEED)
    orders = []
    for _ in range(pairs):
        order = rng.permutation(players)
        orders += [order, order[::-1]]
    orders = np.asarray(orders)
    # chain k, step j: the coalition holding the first j players of orders[k]
    chains = np.zeros((len(orders), players + 1, players), dtype=bool)
    for k, order in enumerate(orders):
        for j, player in enumerate(order):
            chains[k, j + 1 :, player] = True
    flat = chains.reshape(-1, players)
    full, empty = np.ones((1, players), dtype=bool), np.zeros((1, players), dtype=bool)
    unique, inverse = np.unique(np.concatenate([full, empty, flat]), axis=0, return_inverse=True)
    # put everybody first and nobody second, as the exact plan does
    first = [int(inverse[0]), int(inverse[1])]
    rest = [i for i in range(len(unique)) if i not in first]
    reorder = np.asarray(first + rest)
    position = np.empty(len(unique), dtype=np.int64)
    position[reorder] = np.arange(len(unique))
    steps = position[np.asarray(inverse).reshape(-1)[2:]].reshape(len(orders), players + 1)
    return Plan(PERMUTATION, unique[reorder], orders, steps)


def _exact_plan(players: int) -> Plan:
    codes = np.arange(2**players, dtype=np.int64)
    # everybody first, nobody second, then the rest in code order
    codes = np.concatenate([[2**players - 1, 0], codes[1:-1]])
    coalitions = ((codes[:, None] >> np.arange(players)) & 1).astype(bool)
    return Plan(EXACT, coalitions)


def shapley_values(p: Plan, outputs: np.ndarray) -> np.ndarray:
    """Shapley values [players] of the outputs [evaluations] the model gave on ``p.coalitions`` (float64)."""
    outputs = np.asarray(outputs, dtype=np.float64)
    players = p.players
    if p.method == EXACT:
        # the row of each coalition code, to pair S with S + i
        codes = (p.coalitions.astype(np.int64) << np.arange(players)).sum(1)
        by_code = np.empty(2**players, dtype=np.float64)
        by_code[codes] = outputs
        all_codes = np.arange(2**players, dtype=np.int64)
        sizes = np.array([bin(int(code)).count("1") for code in all_codes])
        weights = np.array([factorial(s) * factorial(players - s - 1) / factorial(players) for s in range(players)])
        values = np.empty(players)
        for i in range(players):
            without = all_codes[(all_codes >> i) & 1 == 0]
            values[i] = np.sum(weights[sizes[without]] * (by_code[without | (1 << i)] - by_code[without]))
        return values
    gains = np.diff(outputs[p.steps], axis=1)  # [permutations, players]: the gain of each step
    values = np.zeros(players)
    np.add.at(values, p.orders, gains)
    return values / len(p.orders)


def explain_outputs(p: Plan, outputs: np.ndarray) -> tuple[int, np.ndarray, dict]:
    """The label probabilities [evaluations, labels] the model gave on ``p.coalitions`` -> the predicted label
    (the unmasked row's best), the Shapley values of its probability, and the fields every explanation body
    has (the API's ``Explanation``)."""
    label = int(np.argmax(outputs[0]))
    values = shapley_values(p, outputs[:, label])
    common = {
        "output": "probability",
        "value": round(float(outputs[0, label]), 6),
        "base_value": round(float(outputs[1, label]), 6),
        "method": p.method,
        "evaluations": p.evaluations,
    }
    return label, values, common


_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class TextPlayers:
    """A text's words (whitespace-delimited, punctuation kept with its word) and the tokens each one covers."""

    spans: list[tuple[int, int]]  # character offsets [start, end) of each word in the text
    token_word: np.ndarray  # per token of the encoding: the word it belongs to, -1 for [CLS]/[SEP]

    def masked_ids(self, ids: list[int], coalitions: np.ndarray, mask_id: int) -> np.ndarray:
        """int64 [coalitions, tokens]: the encoding's ids with every token of an absent word set to ``mask_id``
        (shap's Text masker's choice: the tokenizer's mask token, one per masked token, positions unchanged)."""
        rows = np.tile(np.asarray(ids, dtype=np.int64), (len(coalitions), 1))
        words = self.token_word >= 0
        absent = np.zeros(rows.shape, dtype=bool)
        absent[:, words] = ~coalitions[:, self.token_word[words]]
        rows[absent] = mask_id
        return rows


@dataclass(frozen=True)
class TextWork:
    """One text's explanation before it runs: its words, its coalitions, and what it costs."""

    players: TextPlayers
    plan: Plan
    ids: list[int]  # the input's token ids, [CLS] and [SEP] included

    @property
    def units(self) -> int:
        """Tokens the model processes: every evaluation is a forward pass over the whole input."""
        return self.plan.evaluations * len(self.ids)

    def rows(self, mask_id: int) -> np.ndarray:
        return self.players.masked_ids(self.ids, self.plan.coalitions, mask_id)


def text_work(text: str, encoding, budget: int) -> TextWork:
    """Plan one text's explanation from its encoding (a tokenizers Encoding) within ``budget`` evaluations."""
    players = text_players(text, encoding.offsets, encoding.special_tokens_mask)
    if not players.spans:  # every word fell to truncation: cannot happen for a non-blank text, kept for safety
        raise ValueError("the text has no words the model sees")
    return TextWork(players, plan(len(players.spans), budget), list(encoding.ids))


def text_players(text: str, offsets: list[tuple[int, int]], special: list[int]) -> TextPlayers:
    """The words of ``text`` that reached the model (a truncated text's tail is not among them): each
    non-special token belongs to the word whose characters hold its first character."""
    spans = [m.span() for m in _WORD.finditer(text)]
    starts = np.asarray([s for s, _ in spans], dtype=np.int64)
    token_word = np.full(len(offsets), -1, dtype=np.int64)
    for t, ((start, end), is_special) in enumerate(zip(offsets, special, strict=True)):
        if not is_special and end > start:
            token_word[t] = int(np.searchsorted(starts, start, side="right") - 1)
    used = sorted({int(w) for w in token_word if w >= 0})
    renumber = {w: i for i, w in enumerate(used)}
    token_word = np.asarray([renumber.get(int(w), -1) for w in token_word], dtype=np.int64)
    return TextPlayers([spans[w] for w in used], token_word)


@dataclass(frozen=True)
class ImageWork:
    """One preprocessed image's explanation before it runs: a grid x grid map of cells over the model's input."""

    image: np.ndarray  # the model's input for the image: [C, H, W] (NCHW) or [H, W, C] (NHWC)
    blank: np.ndarray  # [C]: what a masked cell's pixels become (the background grey, preprocessed)
    grid: int
    channels_first: bool
    plan: Plan

    def cells(self) -> list[tuple[int, int, int, int]]:
        """(top, bottom, left, right) of each cell in the model's input, row by row."""
        height, width = self.image.shape[1:] if self.channels_first else self.image.shape[:2]
        rows = [(height * i // self.grid, height * (i + 1) // self.grid) for i in range(self.grid)]
        cols = [(width * j // self.grid, width * (j + 1) // self.grid) for j in range(self.grid)]
        return [(top, bottom, left, right) for top, bottom in rows for left, right in cols]

    def rows(self) -> np.ndarray:
        """float32 [evaluations, *image.shape]: the plan's coalitions, each absent cell blanked."""
        return self.masked(self.plan.coalitions)

    def masked(self, coalitions: np.ndarray) -> np.ndarray:
        """float32 [coalitions, *image.shape]: the image with every absent cell of each coalition blanked."""
        out = np.repeat(self.image[None], len(coalitions), axis=0)
        blank = self.blank[:, None, None] if self.channels_first else self.blank[None, None, :]
        for k, (top, bottom, left, right) in enumerate(self.cells()):
            absent = ~coalitions[:, k]
            if self.channels_first:
                out[absent, :, top:bottom, left:right] = blank
            else:
                out[absent, top:bottom, left:right, :] = blank
        return out


def image_work(image: np.ndarray, blank: np.ndarray, grid: int, channels_first: bool, budget: int) -> ImageWork:
    """Plan one preprocessed image's explanation over grid x grid cells within ``budget`` evaluations."""
    return ImageWork(image, blank, grid, channels_first, plan(grid * grid, budget))
