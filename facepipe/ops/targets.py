"""Where the operator commands act: a deployed stack (from its CloudFormation outputs) or the local stack."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError

from detect_faces.contract import OUTPUT_BUCKET, OUTPUT_DLQ_URL, OUTPUT_FUNCTION, OUTPUT_TABLE
from detect_faces.results import ResultsStore

from .errors import OpsError


@dataclass
class Target:
    bucket: str
    table: str
    dlq_url: str
    function_name: str
    client_for: Callable[[str], Any]  # a boto3 client for a service: client_for("s3")
    description: str = ""

    def results(self) -> ResultsStore:
        return ResultsStore(self.client_for("dynamodb"), self.table)


def stack_target(stack_name: str, session: Any = None) -> Target:
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
    )


def local_target() -> Target:
    """The running local stack (`python -m facepipe local up`), from the state it wrote."""
    from facepipe.local import state

    current = state.read()
    if current is None:
        raise OpsError("no local stack is running: start one with `python -m facepipe local up`")
    return Target(
        bucket=current.bucket,
        table=current.table,
        dlq_url=current.dlq_url,
        function_name=current.function_name,
        client_for=current.client,
        description=f"local stack at {current.endpoint}",
    )


def parse_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise OpsError(f"expected s3://bucket/key, got {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key
