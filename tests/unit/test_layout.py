"""The package's shape, as DESIGN.md draws it: imports flow one way, tools are never imported by what ships, the
top level stays small.

    functions -> api | heavy.endpoint -> tasks | jobs | metering | tenancy | heavy -> inference
              -> schemas | errors | bodies | settings | tables | observability
"""

from __future__ import annotations

import ast
from pathlib import Path

from maas.tools import paths

ROOT = paths.REPO_ROOT
# Each part's floor: an import must go to a lower floor (or stay inside its own part), except the edges below.
FLOOR = {
    "functions": 6,
    "api": 5,
    "heavy.endpoint": 5,  # the SageMaker container's front door, as api is the Lambda functions'
    "tasks": 4,
    "jobs": 4,
    "metering": 4,
    "tenancy": 4,
    "heavy": 4,
    "inference": 3,
    "schemas": 1,
    "errors": 1,
    "bodies": 1,
    "settings": 1,
    "tables": 1,
    "observability": 1,
    "maas": 1,  # the package itself (__version__)
}
# Same-floor imports that are part of the design: a batch job bills (metering), resolves its tenant (tenancy) and
# may run on a heavy model's endpoint (heavy); billing needs the tenant's plan (tenancy); the ground floor's
# helpers: a JSON body's errors, the tables' env var names, the service name.
SIDEWAYS = {
    ("jobs", "heavy"),
    ("jobs", "metering"),
    ("jobs", "tenancy"),
    ("metering", "tenancy"),
    ("bodies", "errors"),
    ("settings", "tables"),
    ("observability", "settings"),
}


def part(module: str) -> str:
    """The part of the design a module belongs to: functions, tools, heavy.endpoint, or maas's top folder/file."""
    names = module.split(".")
    if names[0] == "functions":
        return "functions"
    if names[:3] == ["maas", "heavy", "endpoint"]:
        return "heavy.endpoint"
    return names[1] if len(names) > 1 else "maas"


def imports() -> list[tuple[str, str, str]]:
    """(importing file, its part, the imported part) for every maas import in maas/ and functions/."""
    found = []
    for path in sorted([*(ROOT / "maas").rglob("*.py"), *(ROOT / "functions").rglob("*.py")]):
        rel = path.relative_to(ROOT)
        source = part(".".join(rel.with_suffix("").parts))
        for node in ast.walk(ast.parse(path.read_text(), str(rel))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "maas":
                modules = [node.module] if node.module != "maas" else [f"maas.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                modules = [a.name for a in node.names if a.name.split(".")[0] == "maas"]
            else:
                continue
            found += [(str(rel), source, part(m) if m != "maas.__version__" else "maas") for m in modules]
    return found


def test_imports_flow_one_way():
    # GIVEN every import of a maas module in the shipped code and the functions
    shipped = [(f, s, t) for f, s, t in imports() if s not in ("tools", "__main__") and s != t]
    assert shipped, "the walk found no imports"
    # WHEN each is placed on its parts' floors
    backwards = [
        f"{f}: {s} -> {t}" for f, s, t in shipped if (s, t) not in SIDEWAYS and FLOOR.get(s, 0) <= FLOOR.get(t, 99)
    ]
    # THEN none goes up or sideways outside the design
    assert backwards == []


def test_nothing_that_ships_imports_tools():
    # GIVEN the imports of everything but tools/ (maas/__main__.py is `python -m maas`, the CLI's entry: not shipped
    # in any layer's code path, and it only runs the CLI)
    offenders = [f for f, s, t in imports() if t == "tools" and s not in ("tools", "__main__")]
    # THEN none reaches into tools/
    assert offenders == []


def test_the_runtime_layer_rule_is_maas_minus_tools():
    from maas.tools.layers import is_runtime

    # GIVEN the package's files, WHEN the layer rule picks what ships, THEN it is everything but tools/ and caches
    files = [p.relative_to(ROOT / "maas") for p in (ROOT / "maas").rglob("*") if p.is_file()]
    shipped = {f for f in files if is_runtime(f)}
    assert shipped == {f for f in files if f.parts[0] != "tools" and "__pycache__" not in f.parts}
    assert Path("api/metered.py") in shipped and Path("tools/cli.py") not in shipped


def test_the_top_level_holds_at_most_8_modules_besides_the_capability_folders():
    modules = sorted(p.name for p in (ROOT / "maas").glob("*.py"))
    folders = sorted(p.name for p in (ROOT / "maas").iterdir() if p.is_dir() and (p / "__init__.py").is_file())
    assert len(modules) <= 8, modules
    assert set(folders) == {
        "api",
        "heavy",
        "inference",
        "jobs",
        "metering",
        "schemas",
        "settings",
        "tasks",
        "tenancy",
        "tools",
    }
