"""maas.schemas is a leaf: every public body model lives there and imports nothing else from maas."""

from __future__ import annotations

import ast
from pathlib import Path

import maas.schemas
from maas.schemas.images import ImageClassifyParameters
from maas.settings.names import DEFAULT_IMAGE_TOP_K

SCHEMAS = Path(maas.schemas.__file__).parent


def test_schemas_import_nothing_from_maas_but_schemas():
    # GIVEN every module of maas.schemas
    imported = {}
    for module in SCHEMAS.glob("*.py"):
        # WHEN its imports are read
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.setdefault(module.name, set()).add(node.module)
            elif isinstance(node, ast.Import):
                imported.setdefault(module.name, set()).update(alias.name for alias in node.names)
    # THEN none reaches outside maas.schemas
    outside = {
        name: sorted(m for m in modules if m.startswith("maas") and not m.startswith("maas.schemas"))
        for name, modules in imported.items()
    }
    assert not any(outside.values()), outside


def test_image_top_k_default_in_the_schema_matches_the_runtime_default():
    # GIVEN the documented default of `top_k` (schemas cannot import the settings that define it)
    description = ImageClassifyParameters.model_fields["top_k"].description
    # THEN it names the value the service uses
    assert f"(default {DEFAULT_IMAGE_TOP_K}," in description
