"""Lambda's size limits, checked at synth on whatever is staged (real sizes once built).

A function's code plus all its layers must unzip to less than 262,144,000 bytes (the "250 MB" of Lambda's
quotas, the number its error message gives); a layer is counted inside that, so one layer alone has the same
ceiling; a function takes at most 5 layers. When a limit is broken, synth stops with the biggest parts named.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

UNZIPPED_LIMIT_BYTES = 262_144_000
MAX_LAYERS = 5
MB = 1_000_000


class SizeBudgetError(Exception):
    """A function or layer is over a Lambda size limit; the message names the biggest parts."""


@dataclass(frozen=True)
class Part:
    """One asset of a function (its code or a layer) and its largest entries."""

    label: str
    size: int
    entries: tuple[tuple[str, int], ...]  # (path inside the asset, bytes), biggest first


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            entry = os.path.join(root, name)
            if not os.path.islink(entry):
                total += os.stat(entry).st_size
    return total


def measure(path: Path, label: str) -> Part:
    """Size of an asset folder and of its entries; layer roots (`python/`, `models/`) are looked into."""
    entries: list[tuple[str, int]] = []
    if path.is_dir():
        for child in sorted(path.iterdir()):
            if child.is_dir() and child.name in {"python", "models", "lib", "bin"}:
                entries += [(f"{child.name}/{c.name}", _tree_size(c)) for c in sorted(child.iterdir())]
            else:
                entries.append((child.name, _tree_size(child)))
    entries.sort(key=lambda e: (-e[1], e[0]))
    return Part(
        label=label,
        size=sum(size for _, size in entries) if path.is_dir() else _tree_size(path),
        entries=tuple(entries),
    )


def mb(size: int) -> str:
    return f"{size / MB:.1f} MB"


def _biggest(parts: list[Part], n: int = 5) -> str:
    ranked = sorted(((size, f"{p.label}: {name}") for p in parts for name, size in p.entries), reverse=True)[:n]
    return ", ".join(f"{name} {mb(size)}" for size, name in ranked)


def check_function(
    function: str, code: Path, layers: dict[str, Path], limit: int = UNZIPPED_LIMIT_BYTES
) -> tuple[Part, ...]:
    """Measure a function's code and layers; raise SizeBudgetError if a limit is exceeded."""
    if len(layers) > MAX_LAYERS:
        raise SizeBudgetError(f"function {function}: {len(layers)} layers, Lambda allows {MAX_LAYERS}")
    parts = [measure(code, "code")] + [measure(path, label) for label, path in layers.items()]
    for part in parts[1:]:
        if part.size >= limit:
            raise SizeBudgetError(
                f"layer {part.label} of function {function} unzips to {mb(part.size)} ({part.size:,} bytes); a layer "
                f"and the function it belongs to must stay under {limit:,} bytes. Biggest parts: {_biggest([part])}"
            )
    total = sum(p.size for p in parts)
    if total >= limit:
        over = total - limit
        listing = ", ".join(f"{p.label} {mb(p.size)}" for p in parts)
        raise SizeBudgetError(
            f"function {function}: code and layers unzip to {mb(total)} ({total:,} bytes), {mb(over)} over Lambda's "
            f"{limit:,}-byte limit. Parts: {listing}. Biggest parts: {_biggest(parts)}"
        )
    return tuple(parts)
