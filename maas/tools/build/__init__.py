"""Model build pipelines: from framework weights to verified model packages (needs the `build` extra)."""

from __future__ import annotations

from pathlib import Path

# Packages `maas models build NAME` can make, and the precision each is built in.
BUILDS = {
    "all-minilm-l6-v2": "int8",
    "all-minilm-l6-v2-fp32": "fp32",
    "all-minilm-l6-v2-fast": "int8 compute",
    "all-minilm-l6-v2-static": "static embeddings",
    "digits-cnn": "int8",
    "ticket-intents": "int8 classifier trained on the shipped tickets (maas models train-classifier for other data)",
}


def build_package(name: str, out: Path, *, compare: bool = True, quiet: bool = False):
    """Build the package NAME (one of BUILDS) into ``out``; return its manifest. Raises BuildError."""
    if name == "digits-cnn":
        from maas.tools.build.digits import build

        return build(out, quiet=quiet)
    if name == "ticket-intents":
        from maas.tools.build.classifier import default_data, train

        return train(default_data(), name, out, quiet=quiet)
    if name == "all-minilm-l6-v2-fast":
        from maas.tools.build.fast import build

        return build(out, compare=compare, quiet=quiet)
    if name == "all-minilm-l6-v2-static":
        from maas.tools.build.static import build

        return build(out, quiet=quiet)
    from maas.tools.build.minilm import build

    return build(out, compare=compare, quiet=quiet, precision=BUILDS[name])
