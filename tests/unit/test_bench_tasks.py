"""`maas bench tasks`: its specs name real functions, routes and baselines; its agreement check and table.

No performance is asserted: these check that what the benchmark compares and reports is well-formed.
"""

from __future__ import annotations

import argparse
import re

import pytest

from maas.tools import paths
from maas.tools.bench import raw
from maas.tools.bench.tasks import TASKS, _settings, compare, table_rows
from maas.tools.local.server import ROUTES


def _args(**overrides) -> argparse.Namespace:
    values = {"requests": 10, "rounds": 2, "cold_starts": 1, "threads": 1, "task": None, "quick": False}
    return argparse.Namespace(**{**values, **overrides})


def _served(method: str, path: str) -> str | None:
    """The function `maas serve` routes METHOD PATH to."""
    for route in ROUTES:
        pattern = "^" + re.sub(r"\{\w+\}", "[^/]+", route.path) + "$"
        if route.method == method and re.match(pattern, path):
            return route.function
    return None


@pytest.mark.parametrize("name", list(TASKS))
def test_each_spec_names_a_function_its_route_and_a_baseline(name):
    spec = TASKS[name]
    # The function exists and is the one the API routes the spec's path to
    assert (paths.FUNCTIONS_DIR / spec.function / "app.py").is_file()
    assert _served("POST", spec.path) == spec.function
    # The baseline is a class of maas/tools/bench/raw.py, and the function deploys what the baseline loads
    assert isinstance(getattr(raw, spec.raw), type)
    assert spec.raw_model in spec.models
    assert isinstance(spec.raw_options(), dict)


def test_compare_counts_differing_labels_and_measures_float_differences():
    a = [[{"label": "billing", "score": 0.9}, {"label": "refund", "score": 0.1}]]
    assert compare(a, a) == (0, 0.0)
    b = [[{"label": "billing", "score": 0.8999}, {"label": "refund", "score": 0.1001}]]
    mismatched, largest = compare(a, b)
    assert mismatched == 0 and largest == pytest.approx(1e-4)
    swapped = [[{"label": "refund", "score": 0.9}, {"label": "billing", "score": 0.1}]]
    assert compare(a, swapped)[0] == 2
    assert compare([1, 2], [1, 2, 3]) == (1, 0.0)
    assert compare({"index": 1}, {"rank": 1}) == (1, 0.0)
    assert compare([{"index": 3, "relevance_score": 0.5}], [{"index": 3, "relevance_score": 0.25}]) == (0, 0.25)


def test_settings_default_to_every_task_and_refuse_bad_counts():
    settings = _settings(_args())
    assert settings["tasks"] == list(TASKS)
    assert _settings(_args(task=["v2", "v2", "rerank"]))["tasks"] == ["v2", "rerank"]
    assert _settings(_args(quick=True, requests=500))["requests"] < 500
    with pytest.raises(ValueError, match="--cold-starts must be at least 1"):
        _settings(_args(cold_starts=0))
    with pytest.raises(ValueError, match="unknown task"):
        _settings(_args(task=["nope"]))


def test_table_has_a_raw_and_a_handler_row_per_task_with_ratios_on_the_handler():
    result = {
        "summary": {
            "raw": {"p50_ms": 2.0, "p90_ms": 3.0, "cold_s": 0.5, "size_bytes": 200 << 20},
            "handler": {"p50_ms": 2.5, "p90_ms": 3.3, "cold_s": 1.0, "size_bytes": 150 << 20},
        },
        "ratios": {"p50": 1.25, "p90": 1.1, "cold": 2.0, "size": 0.75},
    }
    rows = table_rows({"rerank": result})
    assert rows == [
        ["rerank", "raw", "2.00", "3.00", "", "0.50", "", "200.0"],
        ["", "handler", "2.50", "3.30", "1.25x", "1.00", "2.00x", "150.0"],
    ]
