"""Reading synthesized CloudFormation templates: resources by type, API routes by path, policy statements."""

from __future__ import annotations

import json


def resources(template: dict, type_: str) -> dict[str, dict]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


def only(template: dict, type_: str) -> tuple[str, dict]:
    found = resources(template, type_)
    assert len(found) == 1, f"expected one {type_}, found {sorted(found)}"
    return next(iter(found.items()))


def _resource_path(template: dict, ref) -> str:
    if "Fn::GetAtt" in ref:  # the RestApi's root resource
        return ""
    resource = template["Resources"][ref["Ref"]]["Properties"]
    return _resource_path(template, resource["ParentId"]) + "/" + resource["PathPart"]


def routes(template: dict) -> dict[tuple[str, str], dict]:
    """(HTTP method, path) -> properties of every AWS::ApiGateway::Method."""
    return {
        (m["Properties"]["HttpMethod"], _resource_path(template, m["Properties"]["ResourceId"]) or "/"): m["Properties"]
        for m in resources(template, "AWS::ApiGateway::Method").values()
    }


def statements(template: dict) -> list[tuple[str, dict]]:
    """(policy logical id, statement) for every IAM policy, role inline policy and resource policy."""
    found = []
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        documents = []
        if resource["Type"] == "AWS::IAM::Policy":
            documents.append(props["PolicyDocument"])
        if resource["Type"] == "AWS::IAM::Role":
            documents += [p["PolicyDocument"] for p in props.get("Policies", [])]
        for document in documents:
            for statement in document["Statement"]:
                found.append((logical_id, statement))
    return found


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def policy_of_role(template: dict, role_prefix: str) -> list[dict]:
    """Statements of the policies attached to the role whose logical id starts with ``role_prefix``."""
    out = []
    for resource in resources(template, "AWS::IAM::Policy").values():
        roles = [r.get("Ref", "") for r in resource["Properties"].get("Roles", [])]
        if any(r.startswith(role_prefix) for r in roles):
            out += resource["Properties"]["PolicyDocument"]["Statement"]
    return out


def text(value) -> str:
    return json.dumps(value, sort_keys=True)
