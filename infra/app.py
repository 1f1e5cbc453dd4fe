"""The CDK app: `npx aws-cdk@2 synth` (cdk.json runs `python -m infra.app`) or `create_app()` from tests.

Stacks: `Maas-Data` (stateful, retained) and `Maas-Service` (everything else). Synth is offline: it reads the
configuration, stages code and model layers from this checkout, and makes no AWS or network calls.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import aws_cdk as cdk

from infra.assets import AssetBuilder, AssetPaths
from infra.budget import SizeBudgetError
from infra.config import ConfigError, load_config, load_plans
from infra.stacks import DataStack, ServiceStack
from maas.tools.paths import REPO_ROOT

DATA_STACK = "Maas-Data"
SERVICE_STACK = "Maas-Service"


def cdk_json_context(root: Path = REPO_ROOT) -> dict:
    """cdk.json's context, for synths that do not go through the CDK CLI (which passes it itself)."""
    path = root / "cdk.json"
    return json.loads(path.read_text()).get("context", {}) if path.is_file() else {}


def create_app(
    context: dict | None = None, *, paths: AssetPaths | None = None, outdir: str | None = None
) -> tuple[cdk.App, DataStack, ServiceStack]:
    """Build the app. Outside the CDK CLI, cdk.json's context applies first, then ``context``."""
    merged = {} if "CDK_CONTEXT_JSON" in os.environ else cdk_json_context()
    merged.update(context or {})
    app = cdk.App(context=merged, outdir=outdir)
    config = load_config({k: app.node.try_get_context(k) for k in _context_keys(app, merged)})
    plans = load_plans(only=config.plans)
    env = cdk.Environment(account=config.account, region=config.region)
    assets = AssetBuilder(paths or AssetPaths())
    data = DataStack(app, DATA_STACK, config=config, env=env)
    service = ServiceStack(app, SERVICE_STACK, config=config, plans=plans, data=data, assets=assets, env=env)
    for stack in (data, service):
        cdk.Tags.of(stack).add("service", "maas")
    return app, data, service


def _context_keys(app: cdk.App, merged: dict) -> list[str]:
    from_env = json.loads(os.environ.get("CDK_CONTEXT_JSON", "{}"))
    return sorted(k for k in {*merged, *from_env} if k.startswith("maas:"))


def main() -> int:
    try:
        app, _data, _service = create_app()
    except (ConfigError, SizeBudgetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
