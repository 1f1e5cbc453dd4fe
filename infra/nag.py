"""cdk-nag suppressions, each with its written reason, in one place so reviews see every exception."""

from __future__ import annotations

from cdk_nag import NagPackSuppression, NagSuppressions, RegexAppliesTo
from constructs import IConstruct


def suppress(
    construct: IConstruct, rule: str, reason: str, applies_to: list[str | RegexAppliesTo] | None = None
) -> None:
    """Suppress one AwsSolutions rule on a construct and its children, with the reason it does not apply."""
    NagSuppressions.add_resource_suppressions(
        construct,
        [NagPackSuppression(id=f"AwsSolutions-{rule}", reason=reason, applies_to=applies_to)],
        apply_to_children=True,
    )


def regex(pattern: str) -> RegexAppliesTo:
    """A finding pattern for `applies_to` (cdk-nag matches it against e.g. `Resource::<Arn>/index/*`)."""
    return RegexAppliesTo(regex=f"/{pattern}/g")


# Findings that `grant_*` produces and that are scoped as tightly as the service allows.
GRANT_WILDCARDS = [
    regex(r"^Resource::.*/index/\*$"),  # a table's GSIs (query by index)
    regex(r"^Action::s3:(GetObject|GetBucket|List|Abort|DeleteObject)\*$"),  # grant_read/put action groups
    regex(r"^Resource::.*/(jobs|results|models|files|uploads)/.*\*$"),  # object keys under one prefix of one bucket
]
GRANT_REASON = (
    "Wildcards come from grant_* scoped to one table's indexes or one bucket prefix; the actions are the "
    "read/write groups CDK generates, never '*' or 'service:*'."
)
