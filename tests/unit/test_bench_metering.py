"""`maas bench metering --trace-memory`: the heap's growth per call, the emulator's apart from the rest."""

from __future__ import annotations

import tracemalloc

from maas.tools.bench.metering import EMULATOR, heap_growth


def test_heap_growth_is_split_between_the_emulator_and_the_rest():
    # GIVEN allocations kept by code in a moto module and by other code, between two snapshots
    kept = {}
    emulator_code = compile("kept['moto'] = [bytearray(1024) for _ in range(100)]", "/site/moto/table.py", "exec")
    tracemalloc.start(4)
    try:
        before = tracemalloc.take_snapshot()
        exec(emulator_code, {"kept": kept})
        kept["ours"] = [bytearray(1024) for _ in range(300)]
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    # WHEN the growth is counted over 10 calls
    grown = heap_growth(before, after, calls=10)
    # THEN each owner gets its own: ~10 KB per call under moto's frames, ~30 KB elsewhere
    assert 9.5 <= grown[EMULATOR] <= 12
    assert 29 <= grown["everything else"] <= 34
