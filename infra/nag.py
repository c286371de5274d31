"""How cdk-nag names a resource in a finding, for the acknowledgments that must match it exactly."""

from __future__ import annotations

from aws_cdk import Stack, Token
from constructs import IConstruct


def arn_of(resource: IConstruct) -> str:
    """A resource's ARN as a finding writes it: `<LogicalId.Arn>`."""
    logical_id = Stack.of(resource).resolve(resource.node.default_child.logical_id)  # type: ignore[union-attr]
    return f"<{logical_id}.Arn>"


def pseudo(value: str, name: str) -> str:
    """A pseudo parameter (partition, region, account) as a finding writes it: its reference while unresolved
    (an environment-agnostic stack), else the literal CDK wrote (a known region)."""
    return f"<{name}>" if Token.is_unresolved(value) else value
