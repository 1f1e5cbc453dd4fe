"""Lambda's size limits: checked on staged folders, with the biggest parts named (fake folders of known size)."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.budget import MAX_LAYERS, UNZIPPED_LIMIT_BYTES, SizeBudgetError, check_function

MB = 1_000_000


def sized(path: Path, size: int) -> None:
    """A sparse file of ``size`` bytes: the budget counts apparent sizes, the disk stays empty."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.truncate(size)


@pytest.fixture
def parts(tmp_path):
    code = tmp_path / "code"
    sized(code / "app.py", 2_000)
    sized(code / "maas" / "embedder.py", 50_000)
    runtime = tmp_path / "runtime"
    sized(runtime / "python" / "onnxruntime" / "capi" / "lib.so", 80 * MB)
    sized(runtime / "python" / "numpy" / "core.so", 70 * MB)
    sized(runtime / "python" / "tokenizers" / "t.so", 12 * MB)
    model = tmp_path / "model"
    sized(model / "models" / "big" / "model.onnx", 60 * MB)
    return code, runtime, model


def test_within_the_limit_reports_each_part(parts):
    code, runtime, model = parts
    measured = check_function("embeddings", code, {"runtime layer": runtime, "model layer": model})
    assert [(p.label, p.size) for p in measured] == [
        ("code", 52_000),
        ("runtime layer", 162 * MB),
        ("model layer", 60 * MB),
    ]
    assert measured[1].entries[0] == ("python/onnxruntime", 80 * MB)


def test_over_the_limit_names_the_biggest_parts_and_sizes(parts, tmp_path):
    code, runtime, model = parts
    sized(model / "models" / "big" / "extra.bin", 50 * MB)  # 162 + 110 MB > 262.1 MB
    with pytest.raises(SizeBudgetError) as err:
        check_function("embeddings", code, {"runtime layer": runtime, "model layer": model})
    message = str(err.value)
    assert "function embeddings" in message and "262,144,000" in message
    assert "model layer: models/big 110.0 MB" in message
    assert "runtime layer: python/onnxruntime 80.0 MB" in message
    assert "9.9 MB over" in message  # 272,052,000 - 262,144,000


def test_a_single_layer_over_its_limit_is_named(tmp_path):
    code = tmp_path / "code"
    sized(code / "app.py", 100)
    layer = tmp_path / "layer"
    sized(layer / "python" / "torch" / "lib.so", UNZIPPED_LIMIT_BYTES + 1)
    with pytest.raises(SizeBudgetError, match=r"layer runtime layer of function f unzips to 262.1 MB.*python/torch"):
        check_function("f", code, {"runtime layer": layer})


def test_too_many_layers(tmp_path):
    code = tmp_path / "code"
    sized(code / "app.py", 100)
    layers = {f"layer {i}": code for i in range(MAX_LAYERS + 1)}
    with pytest.raises(SizeBudgetError, match="6 layers, Lambda allows 5"):
        check_function("f", code, layers)


def test_a_file_asset_counts_as_its_size(tmp_path):
    code = tmp_path / "code"
    sized(code / "app.py", 100)
    archive = tmp_path / "model.tar.gz"
    sized(archive, 5 * MB)
    assert check_function("f", code, {"archive": archive})[1].size == 5 * MB
