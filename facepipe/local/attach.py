"""Attach to a bucket and detach from it exactly as `cdk deploy` / `cdk destroy` do: with CDK's own
BucketNotificationsHandler, the code aws-cdk-lib ships and deploys as the `Custom::S3BucketNotifications`
resource's function (tests/infra/test_existing_buckets.py checks the template inlines this very code).

The handler merges the stack's entries into the bucket's existing notification configuration and, on delete,
removes only the entries whose id starts with the stack's ARN; local mode runs it against moto to show that
another consumer of the bucket keeps its events through both.
"""

from __future__ import annotations

import importlib.util
import tarfile
import uuid
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

HANDLER_PATH = "package/custom-resource-handlers/dist/aws-s3/notifications-resource-handler/index.py"


class AttachError(RuntimeError):
    """The handler answered FAILED, as CloudFormation would show it."""


@cache
def cdk_handler_source() -> str:
    """The handler's source, read from the installed aws-cdk-lib (its jsii tarball): nothing is downloaded."""
    spec = importlib.util.find_spec("aws_cdk")
    if spec is None or spec.origin is None:
        raise AttachError("aws-cdk-lib is not installed: run `make venv`")
    tarballs = sorted((Path(spec.origin).parent / "_jsii").glob("aws-cdk-lib@*.jsii.tgz"))
    if not tarballs:
        raise AttachError(f"no aws-cdk-lib jsii tarball under {Path(spec.origin).parent / '_jsii'}")
    with tarfile.open(tarballs[-1]) as archive:
        member = archive.extractfile(HANDLER_PATH)
        if member is None:
            raise AttachError(f"{HANDLER_PATH} is missing from {tarballs[-1].name}")
        return member.read().decode()


def load_handler(s3: S3Client, source: str | None = None) -> dict[str, Any]:
    """The handler module's namespace, with `s3` (its module-level client) bound to the given client."""
    namespace: dict[str, Any] = {"__name__": "cdk_bucket_notifications_handler"}
    code = compile(source or cdk_handler_source(), "aws-cdk-lib:" + HANDLER_PATH, "exec")
    exec(code, namespace)  # noqa: S102 - aws-cdk-lib's own handler, from the installed package
    namespace["s3"] = s3
    return namespace


class BucketAttachment:
    """One `Custom::S3BucketNotifications` resource: its Create, Update and Delete requests."""

    def __init__(
        self,
        s3: S3Client,
        *,
        bucket: str,
        configuration: dict[str, Any],
        stack_id: str,
        handler: dict[str, Any] | None = None,
    ) -> None:
        self.bucket = bucket
        self.configuration = configuration
        self.stack_id = stack_id
        self.handler = handler or load_handler(s3)
        self.responses: list[dict[str, Any]] = []

    def attach(self) -> None:
        self._request("Create", self.configuration)

    def update(self, configuration: dict[str, Any]) -> None:
        old, self.configuration = self.configuration, configuration
        self._request("Update", configuration, old)

    def detach(self) -> None:
        self._request("Delete", self.configuration)

    def _request(self, kind: str, configuration: dict[str, Any], old: dict[str, Any] | None = None) -> None:
        import copy

        event: dict[str, Any] = {
            "RequestType": kind,
            "ResponseURL": "http://127.0.0.1/unused",  # the response is captured below, as CloudFormation reads it
            "StackId": self.stack_id,
            "RequestId": uuid.uuid4().hex,
            "LogicalResourceId": "BucketNotifications",
            "PhysicalResourceId": f"{self.bucket}-notifications",
            # CloudFormation passes properties as strings; the handler mutates them, so each request gets a copy.
            "ResourceProperties": {
                "BucketName": self.bucket,
                "NotificationConfiguration": copy.deepcopy(configuration),
                "Managed": "false",
                "SkipDestinationValidation": "false",
            },
        }
        if old is not None:
            event["OldResourceProperties"] = {
                "BucketName": self.bucket,
                "NotificationConfiguration": copy.deepcopy(old),
            }

        def submit_response(event: dict[str, Any], context: Any, status: str, reason: str) -> None:
            self.responses.append({"Status": status, "Reason": reason})

        self.handler["submit_response"] = submit_response
        self.handler["handler"](event, SimpleNamespace(log_stream_name="local"))
        if self.responses[-1]["Status"] != "SUCCESS":
            raise AttachError(f"{kind} of the notifications of s3://{self.bucket}: {self.responses[-1]['Reason']}")
