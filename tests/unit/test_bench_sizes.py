"""The benchmark's pure helpers: installed sizes, percentiles, interleaving, ratios and the printed table.

No performance is asserted anywhere: these check that the numbers the benchmark reports are computed right.
"""

from __future__ import annotations

import numpy as np
import pytest

from maas.tools.bench.common import (
    MIB,
    SizeReport,
    cpu_model,
    folder_size,
    installed_size,
    latency_summary,
    markdown_table,
    percentile,
    rotated,
    runtime_requirements,
    split_evenly,
)
from maas.tools.bench.embeddings import batch_sentences, check, ratio_line, ratios, table_rows
from maas.tools.layer_rules import dependency_closure, normalize_name, requirement_names


def test_percentile_interpolates_between_ranks_like_numpy():
    # Given an unsorted sample
    values = [7.0, 1.0, 3.0, 9.0, 4.0, 12.0, 2.0]
    # Then every percentile matches numpy's default (linear) method
    for q in (0, 1, 10, 50, 90, 99, 100):
        assert percentile(values, q) == pytest.approx(np.percentile(values, q))
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([5.0], 99) == 5.0


def test_percentile_refuses_empty_input_and_bad_q():
    with pytest.raises(ValueError, match="empty"):
        percentile([], 50)
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0], 101)


def test_latency_summary_reports_milliseconds():
    summary = latency_summary([0.001, 0.002, 0.003, 0.004])
    assert summary["n"] == 4
    assert summary["p50_ms"] == pytest.approx(2.5)
    assert summary["p99_ms"] == pytest.approx(3.97)
    assert summary["mean_ms"] == pytest.approx(2.5)
    assert summary["min_ms"] == pytest.approx(1.0)


def test_split_evenly_and_rotated_interleave_contenders():
    assert split_evenly(300, 10) == [30] * 10
    assert split_evenly(7, 3) == [3, 2, 2]
    assert split_evenly(2, 10) == [1, 1]
    names = ("raw", "handler", "peer")
    assert [rotated(names, r)[0] for r in range(4)] == ["raw", "handler", "peer", "raw"]
    assert rotated(names, 1) == ["handler", "peer", "raw"]


def test_batch_sentences_is_a_fixed_stride_over_non_empty_lines():
    lines = [f"line {i}" for i in range(64)] + ["", "   "]
    assert batch_sentences(lines, 32) == [f"line {i}" for i in range(0, 64, 2)]
    with pytest.raises(ValueError, match="at least 32"):
        batch_sentences(lines[:10], 32)


def test_requirement_names_skip_extras_and_normalize():
    # aws-lambda-powertools needs boto3 only behind its "aws-sdk" extra
    names = requirement_names("aws-lambda-powertools")
    assert "jmespath" in names and "typing-extensions" in names
    assert "boto3" not in names
    assert normalize_name("Typing_Extensions") == "typing-extensions"


def test_installed_size_of_numpy_is_positive():
    report = installed_size(["numpy"])
    assert set(report.parts) == {"numpy"}  # numpy requires nothing
    assert report.total > 1 * MIB


def test_installed_size_with_requirements_is_larger_than_without():
    # Given pydantic, which requires pydantic-core, annotated-types, typing-extensions, typing-inspection
    alone = installed_size(["pydantic"], recursive=False)
    with_deps = installed_size(["pydantic"])
    assert set(alone.parts) == {"pydantic"}
    assert {"pydantic", "pydantic-core", "annotated-types", "typing-extensions"} <= set(with_deps.parts)
    assert with_deps.total > alone.total > 0
    # And the pydantic part is the same size either way (each file counted once)
    assert with_deps.parts["pydantic"] == alone.parts["pydantic"]


def test_installed_size_excludes_and_stops_at_excluded_distributions():
    full = installed_size(["pydantic"])
    trimmed = installed_size(["pydantic"], exclude={"pydantic_core"})
    assert "pydantic-core" not in trimmed.parts
    assert trimmed.total == full.total - full.parts["pydantic-core"]


def test_dependency_closure_reports_what_is_not_installed():
    found, missing = dependency_closure(["numpy", "no-such-distribution-here"])
    assert found == ["numpy"]
    assert missing == ["no-such-distribution-here"]


def test_folder_size_filters_suffixes_and_skips_bytecode(tmp_path):
    (tmp_path / "pkg" / "__pycache__").mkdir(parents=True)
    (tmp_path / "pkg" / "a.py").write_bytes(b"x" * 10)
    (tmp_path / "pkg" / "data.txt").write_bytes(b"y" * 5)
    (tmp_path / "pkg" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"z" * 100)
    assert folder_size(tmp_path) == 15
    assert folder_size(tmp_path, (".py",)) == 10


def test_runtime_requirements_reads_project_dependencies(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "x"\ndependencies = ["onnxruntime>=1.20", "Typing_Extensions; '
        'python_version >= \'3.8\'"]\n[project.optional-dependencies]\ndev = ["torch"]\n'
    )
    assert runtime_requirements(pyproject) == ["onnxruntime", "typing-extensions"]


def test_size_report_top_is_largest_first():
    report = SizeReport(parts={"a": 5, "b": 50, "c": 20, "d": 20})
    assert report.total == 95
    assert report.top(3) == [("b", 50), ("c", 20), ("d", 20)]


SUMMARY = {
    "raw": {"p50_ms": 2.0, "p99_ms": 4.0, "batch_sps": 100.0, "cold_s": 0.25, "size_bytes": 200 * MIB},
    "handler": {"p50_ms": 2.2, "p99_ms": 5.0, "batch_sps": 95.5, "cold_s": 0.5, "size_bytes": 220 * MIB},
    "peer": {"p50_ms": 11.0, "p99_ms": 30.0, "batch_sps": 1234.5, "cold_s": 6.0, "size_bytes": 1320 * MIB},
}


def test_ratios_compare_against_targets():
    by_name = {r["ratio"]: r for r in ratios(SUMMARY)}
    assert by_name["handler p50 / raw p50"]["value"] == pytest.approx(1.1)
    assert by_name["handler p50 / raw p50"]["verdict"] == "PASS"
    assert by_name["peer p50 / handler p50"]["value"] == pytest.approx(5.0)
    assert by_name["peer cold / handler cold"]["value"] == pytest.approx(12.0)
    assert by_name["peer size / ours"]["value"] == pytest.approx(6.0)
    assert by_name["peer size / ours"]["verdict"] == "MISS"
    assert ratio_line(by_name["peer size / ours"]) == "peer size / ours = 6.00 (target >= 10): MISS"


def test_check_handles_both_directions_and_missing_values():
    assert check(1.15, "<=", 1.15) == "PASS"
    assert check(1.16, "<=", 1.15) == "MISS"
    assert check(2.0, ">=", 2.0) == "PASS"
    assert check(None, ">=", 2.0) == "n/a"


def test_table_rows_and_markdown_table():
    rows = table_rows(SUMMARY)
    assert rows == [
        ["raw", "2.00", "4.00", "100.0", "0.25", "200.0"],
        ["handler", "2.20", "5.00", "95.5", "0.50", "220.0"],
        ["peer", "11.00", "30.00", "1,234.5", "6.00", "1,320.0"],
    ]
    table = markdown_table(["contender", "p50 ms", "sentences/s"], [r[:2] + [r[3]] for r in rows])
    assert table.splitlines() == [
        "| contender | p50 ms | sentences/s |",
        "|-----------|-------:|------------:|",
        "| raw       |   2.00 |       100.0 |",
        "| handler   |   2.20 |        95.5 |",
        "| peer      |  11.00 |     1,234.5 |",
    ]


def test_table_rows_show_unmeasured_values_as_na():
    rows = table_rows({"raw": {"p50_ms": 1.0}})
    assert rows == [["raw", "1.00", "n/a", "n/a", "n/a", "n/a"]]


def test_cpu_model_reads_model_name():
    info = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7R13 Processor\n"
    assert cpu_model(info) == "AMD EPYC 7R13 Processor"
