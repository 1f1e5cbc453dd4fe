"""`maas bench tasks` end to end on tiny counts: every task runs, both contenders answer alike, and the table
and the JSON results are well-formed. No performance number is asserted."""

from __future__ import annotations

import json

from maas.tools import paths
from maas.tools.bench.tasks import CONTENDERS, TASKS, report
from maas.tools.build.classifier import default_data, ensure_built
from maas.tools.cli import main


def test_bench_tasks_runs_every_task_and_writes_results(model_dir, tmp_path, capsys):
    # Given the embedding package and the trained classifier
    ensure_built(default_data(), "ticket-intents", paths.model_dir("ticket-intents"))
    out = tmp_path / "tasks.json"
    # When every task is measured with two requests, one round and one cold start per contender
    argv = ["bench", "tasks", "--requests", "2", "--rounds", "1", "--cold-starts", "1", "--threads", "1"]
    assert main([*argv, "--json", str(out)]) == 0
    # Then the printed table has a row per task and the JSON holds every task's numbers
    printed = capsys.readouterr().out
    results = json.loads(out.read_text())
    assert results["settings"]["tasks"] == list(TASKS)
    # (the report reads back from the JSON alone, as printed)
    assert report(results).splitlines()[2:] == printed.strip().splitlines()[2:]
    for name, task in results["tasks"].items():
        assert f"| {name} " in printed
        for contender in CONTENDERS:
            s = task["summary"][contender]
            assert 0 < s["p50_ms"] <= s["p90_ms"]
            assert s["cold_s"] > 0 and s["size_bytes"] > 0
            assert len(task["latency"][contender]["samples_ms"]) == 2
            assert len(task["cold_start"][contender]) == 1
        assert task["ratios"]["p50"] > 0 and task["ratios"]["size"] > 0
        # And the hand-written baseline does the same work: same labels/indices, scores within rounding
        assert task["agreement"]["mismatched_values"] == 0, name
        assert task["agreement"]["max_abs_diff"] < 1e-3, name
        # And the function's deployment holds every model package it loads
        assert {f"model {m}" for m in TASKS[name].models} <= set(task["sizes"]["handler"]["parts"])
