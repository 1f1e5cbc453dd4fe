"""cdk-nag (AwsSolutions) and cfn-lint on every synthesized template; offline synth; placeholders."""

from __future__ import annotations

from pathlib import Path

import pytest
from cfnlint.api import ManualArgs, lint_file

from infra.app import create_app
from infra.stacks import PLACEHOLDER_RULE
from tests.infra.conftest import fake_paths

SCENARIOS = ["built", "fresh", "variant"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_cdk_nag_aws_solutions_has_no_unsuppressed_findings(all_synths, scenario):
    findings = [m for m in all_synths[scenario].messages if "AwsSolutions-" in m[2] and m[0] in ("ERROR", "WARNING")]
    assert findings == []


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_suppression_has_a_written_reason(all_synths, scenario):
    for template in all_synths[scenario].templates.values():
        for logical_id, resource in template["Resources"].items():
            rules = resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
            for rule in rules:
                assert len(rule["reason"]) >= 40, (logical_id, rule["id"])


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_cfn_lint_reports_no_errors(all_synths, scenario):
    synth = all_synths[scenario]
    for name in synth.templates:
        template = synth.outdir / f"{name}.template.json"
        matches = lint_file(Path(template), config=ManualArgs(regions=["us-east-1", "eu-west-1"]))
        errors = [f"{m.rule.id} {m.message} ({m.path})" for m in matches if m.rule.id.startswith("E")]
        assert errors == [], name


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_synth_is_offline_and_needs_no_account_lookup(all_synths, scenario):
    """The sockets were blocked during synth; no context lookup is pending; no account id is baked in."""
    synth = all_synths[scenario]
    assert synth.missing_context == []
    for template in synth.templates.values():
        assert "123456789012" not in str(template)


def test_built_assets_make_a_deployable_template(built):
    assert PLACEHOLDER_RULE not in built.service_template.get("Rules", {})
    assert not [m for m in built.messages if "placeholder" in m[2]]


def test_fresh_clone_synthesizes_with_placeholders_that_cannot_deploy(fresh):
    """Given no layer or model built, synth succeeds, warns with the build commands, and CloudFormation would
    refuse the template through a rule whose message names them."""
    warnings = [m[2] for m in fresh.messages if m[0] == "WARNING" and "placeholders" in m[2]]
    assert len(warnings) == 1
    for command in (
        "python -m maas.tools.layers build-runtime --arch x86_64",
        "maas models build all-minilm-l6-v2",
        "maas models train-classifier",  # the classify layer's package: the catalog's build command
        "maas models build digits-cnn",
    ):
        assert command in warnings[0]
    assert "maas models build ticket-intents" not in warnings[0]
    rule = fresh.service_template["Rules"][PLACEHOLDER_RULE]["Assertions"][0]
    assert rule["Assert"] == {"Fn::Equals": ["placeholder-assets", "built-assets"]}
    assert "maas models build" in rule["AssertDescription"]
    readme = next(Path(fresh.outdir).parent.glob("staging/placeholders/runtime-*/README.md"))
    assert "python -m maas.tools.layers build-runtime" in readme.read_text()


def test_require_built_assets_turns_placeholders_into_a_synth_error(tmp_path):
    """Deploy scripts pass -c maas:requireBuiltAssets=true: a placeholder is then an error, before any upload."""
    _, _, service = create_app(
        {"maas:requireBuiltAssets": "true", "maas:models": "all-minilm-l6-v2"},
        paths=fake_paths(tmp_path, built=False),
        outdir=str(tmp_path / "cdk.out"),
    )
    errors = [e.data for e in service.node.metadata if e.type == "aws:cdk:error"]
    assert len(errors) == 1 and "maas models build all-minilm-l6-v2" in errors[0]


def test_the_nag_harness_reports_findings_when_there_are_some(tmp_path):
    """The collection path used above does see unsuppressed findings (a plain bucket breaks S1 and S10)."""
    import aws_cdk as cdk
    from aws_cdk import aws_s3 as s3
    from cdk_nag import AwsSolutionsChecks

    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "Plain")
    s3.Bucket(stack, "Bucket")
    cdk.Aspects.of(app).add(AwsSolutionsChecks())
    messages = [str(m.entry.data) for s in app.synth().stacks for m in s.messages]
    assert any("AwsSolutions-S1" in m for m in messages) and any("AwsSolutions-S10" in m for m in messages)
