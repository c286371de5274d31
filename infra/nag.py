"""How cdk-nag names a resource in a finding, for the acknowledgments that must match it exactly."""

from __future__ import annotations

from aws_cdk import Stack, Token, Validations
from constructs import IConstruct


def arn_of(resource: IConstruct) -> str:
    """A resource's ARN as a finding writes it: `<LogicalId.Arn>`."""
    logical_id = Stack.of(resource).resolve(resource.node.default_child.logical_id)  # type: ignore[union-attr]
    return f"<{logical_id}.Arn>"


def pseudo(value: str, name: str) -> str:
    """A pseudo parameter (partition, region, account) as a finding writes it: its reference while unresolved
    (an environment-agnostic stack), else the literal CDK wrote (a known region)."""
    return f"<{name}>" if Token.is_unresolved(value) else value


def acknowledge_verbatim(scope: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge a finding under the exact id cdk-nag gives it. `Validations.acknowledge` normalises the id
    first (spaces become "-", brackets must pair up), and cdk-nag compares ids as it wrote them: a finding that
    names a resource with a space or an unpaired bracket, such as the objects under the prefix "Camera Uploads/",
    would never match its acknowledgment. The metadata is the one `Validations.acknowledge` records."""
    scope.node.add_metadata(Validations.ACKNOWLEDGED_RULES_METADATA_KEY, {f"Annotation::{rule_id}": reason})
