"""Where the operator commands act: a deployed stack (from its CloudFormation outputs) or the local stack.

A Target is built here for a deployed stack (`stack_target`) and by local mode for the local stack
(`local_target`): the commands never look for either themselves, so ops imports nothing of local mode."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

import boto3
from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError

from detect_faces.contract import (
    OUTPUT_BACKLOG_FUNCTION,
    OUTPUT_BATCH_JOB_ROLE,
    OUTPUT_BUCKET,
    OUTPUT_DLQ_URL,
    OUTPUT_FUNCTION,
    OUTPUT_REDACTED_BUCKET,
    OUTPUT_REDACTION_FUNCTION,
    OUTPUT_REPORTS_BUCKET,
    OUTPUT_TABLE,
    OUTPUT_WATCHED,
)
from detect_faces.results import ResultsStore
from detect_faces.subscriptions import split_locations
from facepipe.common.clients import ClientFor

from .errors import OpsError


class TargetKind(enum.Enum):
    """What a Target is, for the few commands that act differently on each (backfill's Batch Operations engine:
    a deployed stack runs a job in S3, the local stack has it emulated on this machine)."""

    STACK = "stack"  # a deployed CloudFormation stack, from its outputs
    LOCAL = "local"  # the running `python -m facepipe local up`


@dataclass
class Target:
    bucket: str
    table: str
    dlq_url: str
    function_name: str
    client_for: ClientFor  # a boto3 client for a service: client_for("s3")
    description: str = ""  # for messages only ("stack Facepipe (eu-west-1)"); `kind` says what it is
    kind: TargetKind = TargetKind.STACK
    locations: tuple[str, ...] = ()  # every watched s3://bucket/prefix (none: all of `bucket`)
    # For backfill --engine batch-operations: the backlog function, its job role, the reports bucket; empty for a
    # stack deployed before them
    backlog_function_arn: str = ""
    batch_job_role_arn: str = ""
    reports_bucket: str = ""
    # With redacted copies on (facepipe:redaction, `local up --redaction`): the copies' bucket; "" when off
    redaction_bucket: str = ""
    # The redaction function, which `redrive` replays outcome events' failure records to; "" when the stack names
    # none (a deployed stack has no output for it yet: those records are listed, not replayed)
    redaction_function_name: str = ""

    def results(self) -> ResultsStore:
        return ResultsStore(self.client_for("dynamodb"), self.table)

    def watched(self) -> list[tuple[str, str]]:
        """(bucket, key prefix) for each watched location; "" is every key."""
        found = [parse_s3_uri(uri) for uri in self.locations]
        return found or [(self.bucket, "")]

    def where(self, arg: str = "") -> list[tuple[str, str]]:
        """What an operator's argument names: `s3://bucket/prefix` (any watched bucket), or a key prefix, which
        applies to every watched bucket. An unwatched bucket is refused with the ones that are watched."""
        if arg.startswith("s3://"):
            bucket, prefix = parse_s3_uri(arg if "/" in arg[5:] else arg + "/")
            if bucket not in {b for b, _ in self.watched()}:
                raise OpsError(f"s3://{bucket}/ is not watched by {self.description or 'this stack'}; it watches "
                               + " ".join(f"s3://{b}/{p}" for b, p in self.watched()))  # fmt: skip
            return [(bucket, prefix)]
        return [(bucket, arg) for bucket in dict.fromkeys(b for b, _ in self.watched())]

    def backfill_location(self, uri: str) -> tuple[str, str]:
        """(bucket, prefix) that `uri` (s3://bucket/prefix, or a key prefix of the stack's bucket) names, when
        the functions' roles read every key under it (they are scoped to the watched prefixes); else OpsError."""
        ((bucket, prefix),) = self.where(uri if uri.startswith("s3://") else f"s3://{self.bucket}/{uri}")
        if not any(b == bucket and prefix.startswith(p) for b, p in self.watched()):
            raise OpsError(
                f"the function reads only under {' '.join(f's3://{b}/{p}' for b, p in self.watched())} (its role"
                f" is scoped to the watched prefixes), not all of s3://{bucket}/{prefix}"
            )
        return bucket, prefix


class Session(Protocol):
    """What `stack_target` takes: a boto3 Session, or anything with its `client` and `region_name`."""

    @property
    def region_name(self) -> str | None: ...

    @property
    def client(self) -> ClientFor: ...


def stack_target(stack_name: str, session: Session | None = None) -> Target:
    session = session or boto3.session.Session()
    try:
        stacks = session.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        raise OpsError(f"stack {stack_name!r}: {exc.response['Error'].get('Message', exc)}") from None
    except (NoCredentialsError, NoRegionError) as exc:
        raise OpsError(f"{exc} (set AWS_PROFILE / AWS_REGION, or use --local)") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    missing = [k for k in (OUTPUT_BUCKET, OUTPUT_TABLE, OUTPUT_DLQ_URL, OUTPUT_FUNCTION) if k not in outputs]
    if missing:
        raise OpsError(f"stack {stack_name!r} has no output {', '.join(missing)}: is it a facepipe stack?")
    return Target(
        bucket=outputs[OUTPUT_BUCKET],
        table=outputs[OUTPUT_TABLE],
        dlq_url=outputs[OUTPUT_DLQ_URL],
        function_name=outputs[OUTPUT_FUNCTION],
        client_for=session.client,
        description=f"stack {stack_name} ({session.region_name})",
        kind=TargetKind.STACK,
        locations=split_locations(outputs.get(OUTPUT_WATCHED, "")),  # a prefix may hold a space
        backlog_function_arn=outputs.get(OUTPUT_BACKLOG_FUNCTION, ""),
        batch_job_role_arn=outputs.get(OUTPUT_BATCH_JOB_ROLE, ""),
        reports_bucket=outputs.get(OUTPUT_REPORTS_BUCKET, ""),
        redaction_bucket=outputs.get(OUTPUT_REDACTED_BUCKET, ""),
        redaction_function_name=outputs.get(OUTPUT_REDACTION_FUNCTION, ""),
    )


def parse_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise OpsError(f"expected s3://bucket/key, got {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key
