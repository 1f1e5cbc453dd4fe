"""`maas bench explain`: how faithful and how fast the served explanations are.

Faithfulness is a deletion test: for each held-out input, delete the 3 players (words, image cells) with the
largest Shapley values for the predicted label, and compare the drop of that label's probability with the mean
drop over random draws of 3 players. An explanation that points at what the model uses wins most comparisons.
Nothing here asserts a number: it measures and reports (the tests hold the thresholds).
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np

from maas.inference.explain import text_work
from maas.inference.package import read_manifest
from maas.settings import names as c

TOP = 3  # players deleted
DRAWS = 10  # random draws of TOP players per input, averaged
TWENTY_WORDS = "I ordered a blue jacket three weeks ago and the tracking page still says it has not left the warehouse."


def held_out_texts(data: Path) -> list[str]:
    """The held-out texts of a classifier data set (the CSV's split column)."""
    with data.open(newline="") as f:
        return [row["text"] for row in csv.DictReader(f) if row["split"] == "test"]


def _deletion(drop, players: int, values: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """(drop when the TOP highest-valued players are deleted, mean drop over DRAWS random TOP players)."""
    top = drop(set(np.argsort(-values, kind="stable")[:TOP].tolist()))
    random = float(np.mean([drop(set(rng.choice(players, TOP, replace=False).tolist())) for _ in range(DRAWS)]))
    return top, random


def _summary(pairs: list[tuple[float, float]], evaluations: list[int]) -> dict:
    tops, randoms = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    return {
        "n": len(pairs),
        "wins": int((tops > randoms).sum()),
        "rate": round(float((tops > randoms).mean()), 4),
        "mean_drop_top": round(float(tops.mean()), 4),
        "mean_drop_random": round(float(randoms.mean()), 4),
        "mean_evaluations": round(float(np.mean(evaluations)), 1),
    }


def text_deletion(folder: Path, texts: list[str], budget: int = c.DEFAULT_EXPLAIN_EVALUATIONS, seed: int = 0) -> dict:
    """The deletion test on a classifier package: explanations as served (maas.tasks.classify.explain_texts),
    deletion by removing the words from the text (and classifying what is left)."""
    from maas.inference.classifiers import TextClassifier
    from maas.tasks.classify import explain_texts

    model = TextClassifier(folder, read_manifest(folder))
    rng = np.random.default_rng(seed)
    pairs, evaluations = [], []
    for text in texts:
        work = text_work(text, model.tokenize([text])[0], budget)
        probabilities, (explanation,) = explain_texts(model, [text], [work])
        label = int(np.argmax(probabilities[0]))
        spans, values = work.players.spans, np.array([w["value"] for w in explanation["words"]])

        def drop(deleted: set[int], text=text, spans=spans, label=label, p=probabilities[0]) -> float:
            kept = " ".join(text[s:e] for i, (s, e) in enumerate(spans) if i not in deleted)
            return float(p[label] - model.embed([kept]).vectors[0, label])

        pairs.append(_deletion(drop, len(spans), values, rng))
        evaluations.append(work.plan.evaluations)
    return _summary(pairs, evaluations)


def zero_shot_deletion(models: Path, texts: list[str], labels: list[str], seed: int = 0) -> dict:
    """The deletion test on zero-shot classification (the embedding model, ``labels`` as candidates), through the
    classify service itself (metering off): explained with parameters.explain, deletion by classifying the text
    without the words."""
    from maas.tools import paths
    from maas.tools.explain import classify_locally

    rng = np.random.default_rng(seed)
    pairs, evaluations = [], []
    for text in texts:
        top = classify_locally(text, paths.DEFAULT_MODEL, labels, models, explain=True)[0]
        words = top["explanation"]["words"]

        def drop(deleted: set[int], words=words, top=top) -> float:
            kept = " ".join(w["text"] for i, w in enumerate(words) if i not in deleted)
            scores = {s["label"]: s["score"] for s in classify_locally(kept, paths.DEFAULT_MODEL, labels, models)}
            return float(top["score"] - scores[top["label"]])

        pairs.append(_deletion(drop, len(words), np.array([w["value"] for w in words]), rng))
        evaluations.append(top["explanation"]["evaluations"])
    return _summary(pairs, evaluations)


def image_deletion(folder: Path, images: np.ndarray, grid: int = c.DEFAULT_EXPLAIN_GRID, seed: int = 0) -> dict:
    """The deletion test on an image package: ``images`` are preprocessed model inputs; explanations as served
    (maas.tasks.images.explain_images), deletion by painting the cells the background grey."""
    from maas.inference.explain import image_work
    from maas.inference.images import ImageClassifier, blank
    from maas.tasks.images import ExplainImages, explain_images

    manifest = read_manifest(folder)
    model = ImageClassifier(folder, manifest)
    explain = ExplainImages(grid=grid)
    probabilities, explanations = explain_images(model, images, explain)
    rng = np.random.default_rng(seed)
    pairs, evaluations = [], []
    for image, p, explanation in zip(images, probabilities, explanations, strict=True):
        label = int(np.argmax(p))
        work = image_work(image, blank(manifest.image), grid, manifest.image.layout == "NCHW", 2)

        def drop(deleted: set[int], work=work, label=label, p=p) -> float:
            keep = np.array([[k not in deleted for k in range(grid * grid)]])
            return float(p[label] - model.classify(work.masked(keep))[0, label])

        pairs.append(_deletion(drop, grid * grid, np.ravel(explanation["cells"]), rng))
        evaluations.append(explanation["evaluations"])
    return _summary(pairs, evaluations)


def text_estimator_error(folder: Path, texts: list[str], budget: int = c.DEFAULT_EXPLAIN_EVALUATIONS) -> dict:
    """How far the served permutation estimate is from the exact Shapley values (every coalition evaluated, what
    shap's ExactExplainer computes; the tests hold the two equal), next to shap's own PermutationExplainer on the
    same budget and masking: max |error| over the words, as a fraction of the largest exact value, per text."""
    import shap

    from maas.inference.classifiers import TextClassifier
    from maas.inference.explain import explain_outputs, plan

    model = TextClassifier(folder, read_manifest(folder))
    ours, theirs = [], []
    for text in texts:
        sampled = text_work(text, model.tokenize([text])[0], budget)
        players = sampled.players

        def run(coalitions: np.ndarray, ids=sampled.ids, players=players) -> np.ndarray:
            return model.run_rows([players.masked_ids(ids, coalitions, model.mask_id)])[0][0]

        full = plan(len(players.spans), 1 << 30)
        label, exact, _ = explain_outputs(full, run(full.coalitions))
        _, served, _ = explain_outputs(sampled.plan, run(sampled.plan.coalitions))
        masker = shap.maskers.Independent(np.zeros((1, len(players.spans))))
        reference = shap.PermutationExplainer(lambda z, label=label: run(np.asarray(z) > 0.5)[:, label], masker, seed=0)
        other = reference(np.ones((1, len(players.spans))), max_evals=budget, silent=True).values[0]
        spread = np.abs(exact).max()
        ours.append(float(np.abs(served - exact).max() / spread))
        theirs.append(float(np.abs(other - exact).max() / spread))
    return {
        "n": len(texts),
        "budget": budget,
        "served_mean": round(float(np.mean(ours)), 3),
        "served_max": round(float(np.max(ours)), 3),
        "shap_permutation_mean": round(float(np.mean(theirs)), 3),
        "shap_permutation_max": round(float(np.max(theirs)), 3),
    }


def text_latency(folder: Path, text: str = TWENTY_WORDS, rounds: int = 10) -> dict:
    """p50 of one explained input (default budget) vs the same input classified plainly, interleaved."""
    from maas.inference.classifiers import TextClassifier
    from maas.tasks.classify import explain_texts

    model = TextClassifier(folder, read_manifest(folder))
    plain, explained = [], []
    for _ in range(rounds + 1):  # the first round warms up
        started = time.perf_counter()
        model.embed([text])
        plain.append(time.perf_counter() - started)
        started = time.perf_counter()
        work = text_work(text, model.tokenize([text])[0], c.DEFAULT_EXPLAIN_EVALUATIONS)
        explain_texts(model, [text], [work])
        explained.append(time.perf_counter() - started)
    p50_plain, p50_explained = float(np.median(plain[1:])), float(np.median(explained[1:]))
    return {
        "words": len(text.split()),
        "tokens": len(work.ids),
        "method": work.plan.method,
        "evaluations": work.plan.evaluations,
        "p50_plain_ms": round(p50_plain * 1000, 2),
        "p50_explained_ms": round(p50_explained * 1000, 1),
        "ratio": round(p50_explained / p50_plain, 1),
    }


def held_out_digits(folder: Path) -> np.ndarray:
    """The digits package's held-out images as model inputs (scikit-learn's bundled data, the build's split)."""
    from maas.tools.build import digits

    return digits.normalize(digits.load_split()["x_test"], read_manifest(folder).image)


def run(models: Path, data: Path, out: Path | None = None) -> dict:
    """Every measurement of the README's explanation section; printed, and written to ``out`` as JSON."""
    folder = models / c.DEFAULT_CLASSIFIER
    texts = [t for t in held_out_texts(data) if len(t.split()) >= 2 * TOP]
    labels = read_manifest(folder).labels
    images = models / c.DEFAULT_IMAGE_MODEL
    results = {
        "text_deletion": text_deletion(folder, texts),
        "zero_shot_deletion": zero_shot_deletion(models, texts, [label.replace("_", " ") for label in labels]),
        "image_deletion": image_deletion(images, held_out_digits(images)),
        "text_estimator_error": text_estimator_error(folder, [t for t in texts if len(t.split()) in (9, 10)][:10]),
        "text_latency": text_latency(folder),
    }
    print(json.dumps(results, indent=2))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
    return results
